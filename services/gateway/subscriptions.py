"""Topics and who may subscribe to them.

``chat:<chat_id>``   the caller must be a current participant of that talk (read tables,
                     waiting for the projection if needed: :mod:`services.gateway.membership`);
                     another customer's talk, or none at all, is ``not_found`` (existence
                     does not leak); a talk of the same customer the caller is not in is
                     ``forbidden``, as the query API answers 404 and 403.
``agent:<agent_id>`` only the caller's own agent id.

Subscribing is a gate, not the filter: every event is delivered only to the agents in its
``audience``, so a participant removed after subscribing stops receiving the talk's events
from ``participant_left`` on.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

MAX_TOPICS = 1_000  # per socket


@dataclass(frozen=True, slots=True)
class Topic:
    kind: str  # "chat" | "agent"
    id: UUID

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


@dataclass(frozen=True, slots=True)
class TopicError:
    """Why a topic was refused: an error frame's ``error`` code and ``detail``."""

    error: str
    detail: str
    topic: object

    def frame(self) -> dict:
        return {"type": "error", "error": self.error, "detail": self.detail, "topic": self.topic}


def parse_topic(text: object) -> Topic | TopicError:
    if not isinstance(text, str):
        return TopicError("unknown_topic", "a topic is a string 'chat:<id>' or 'agent:<id>'", text)
    kind, sep, ident = text.partition(":")
    if not sep or kind not in ("chat", "agent"):
        return TopicError("unknown_topic", "topics are 'chat:<chat_id>' or 'agent:<agent_id>'",
                          text)
    try:
        return Topic(kind, UUID(ident))
    except ValueError:
        return TopicError("unknown_topic", f"the id in {kind}:<id> must be a UUID", text)
