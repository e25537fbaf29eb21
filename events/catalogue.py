"""The event catalogue: every fact the store records, as a pydantic model.

Names are past tense. Each class carries its ``schema_version``; when a shape changes, bump
the version here and register an upcaster in :mod:`events.upcasting` that turns the stored
older payload into the current one. Timestamps are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict


class Event(BaseModel):
    """Base of every domain event. ``event_type`` is the stored type name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1


class Media(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    url: str
    name: str = ""


# --- the chat stream (``chat-<id>``): the talk and its membership -------------------------


class ChatCreated(Event):
    event_type: ClassVar[str] = "ChatCreated"

    chat_id: UUID
    customer_id: UUID
    type: Literal["normal", "group"]
    name: str
    detail: str
    tm_create: datetime


class ChatUpdated(Event):
    event_type: ClassVar[str] = "ChatUpdated"

    chat_id: UUID
    name: str | None = None
    detail: str | None = None
    tm_update: datetime


class ChatDeleted(Event):
    event_type: ClassVar[str] = "ChatDeleted"

    chat_id: UUID
    tm_delete: datetime


class ParticipantJoined(Event):
    event_type: ClassVar[str] = "ParticipantJoined"

    chat_id: UUID
    participant_id: UUID
    owner_type: Literal["agent"]
    owner_id: UUID
    tm_joined: datetime


class ParticipantLeft(Event):
    event_type: ClassVar[str] = "ParticipantLeft"

    chat_id: UUID
    participant_id: UUID
    owner_type: Literal["agent"]
    owner_id: UUID
    tm_left: datetime


# --- the message stream (``message-<id>``): one message, its edits and reactions ----------


class MessagePosted(Event):
    event_type: ClassVar[str] = "MessagePosted"

    message_id: UUID
    chat_id: UUID
    parent_id: UUID | None = None
    owner_type: Literal["agent", "system"]
    owner_id: UUID
    type: Literal["normal", "system"]
    text: str
    medias: tuple[Media, ...] = ()
    tm_create: datetime


class MessageEdited(Event):
    event_type: ClassVar[str] = "MessageEdited"

    message_id: UUID
    chat_id: UUID
    text: str
    tm_update: datetime


class MessageDeleted(Event):
    event_type: ClassVar[str] = "MessageDeleted"

    message_id: UUID
    chat_id: UUID
    tm_delete: datetime


class ReactionAdded(Event):
    event_type: ClassVar[str] = "ReactionAdded"

    message_id: UUID
    chat_id: UUID
    emoji: str
    owner_type: Literal["agent"]
    owner_id: UUID
    tm_create: datetime


class ReactionRemoved(Event):
    event_type: ClassVar[str] = "ReactionRemoved"

    message_id: UUID
    chat_id: UUID
    emoji: str
    owner_type: Literal["agent"]
    owner_id: UUID
    tm_remove: datetime


EVENT_CLASSES: tuple[type[Event], ...] = (
    ChatCreated,
    ChatUpdated,
    ChatDeleted,
    ParticipantJoined,
    ParticipantLeft,
    MessagePosted,
    MessageEdited,
    MessageDeleted,
    ReactionAdded,
    ReactionRemoved,
)

EVENT_TYPES: dict[str, type[Event]] = {cls.event_type: cls for cls in EVENT_CLASSES}


def chat_stream(chat_id: UUID) -> str:
    return f"chat-{chat_id}"


def message_stream(message_id: UUID) -> str:
    return f"message-{message_id}"
