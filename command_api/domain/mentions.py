"""Mentions: ``<@agent-uuid>`` tokens in a message's text that name a participant of its talk.

A token naming anyone else (or not a UUID) is plain text. The result keeps the order of first
appearance, each agent once; ids are compared as UUIDs (any case)."""

from __future__ import annotations

import re
from collections.abc import Container
from uuid import UUID

_TOKEN = re.compile(r"<@([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})>")


def mentions_in(text: str, participants: Container[UUID]) -> tuple[UUID, ...]:
    found: list[UUID] = []
    for match in _TOKEN.finditer(text or ""):
        agent = UUID(match.group(1))
        if agent in participants and agent not in found:
            found.append(agent)
    return tuple(found)
