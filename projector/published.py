"""What a published event looks like on the wire (DESIGN, "Published stream").

Routing key ``{customer_id}.{chat_id}.{event}``; body ``{"type", "event_id", "position",
"customer_id", "chat_id", "audience", "data"}`` where ``data`` is the resource as the query
API shows it after the event and ``audience`` the agent ids allowed to see it. The pydantic
models describing these bodies (and the AsyncAPI document made from them) are in
:mod:`projector.asyncapi`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from events.catalogue import EVENT_CLASSES, PUBLISHED_NAMES
from events.envelope import StoredEvent

# Stored event type -> published event name (each event's ``published_as``).
EVENT_NAMES: dict[str, str] = PUBLISHED_NAMES

# Published event name -> the resource its ``data`` holds.
RESOURCE_OF: dict[str, str] = {cls.published_as: cls.resource for cls in EVENT_CLASSES}

# Published event name -> what it means (the AsyncAPI document's texts).
WHAT_HAPPENED: dict[str, str] = {cls.published_as: cls.description for cls in EVENT_CLASSES}

CONTENT_TYPE = "application/json"


def routing_key(customer_id: UUID, chat_id: UUID, event: str) -> str:
    return f"{customer_id}.{chat_id}.{event}"


def body(stored: StoredEvent, event: str, chat_id: UUID, audience: Iterable[UUID],
         data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": event,
        "event_id": str(stored.event_id),
        "position": stored.position,
        "customer_id": str(stored.customer_id),
        "chat_id": str(chat_id),
        "audience": [str(agent_id) for agent_id in audience],
        "data": data,
    }
