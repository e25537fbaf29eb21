"""The event catalogue: every fact the store records, as a pydantic model, and the one place
that says where each event goes.

Names are past tense. Each class carries its ``schema_version``; when a shape changes, bump
the version here and register an upcaster in :mod:`events.upcasting` that turns the stored
older payload into the current one. Timestamps are timezone-aware UTC datetimes.

Each class also declares (class variables, read by the rest of the system):

- ``stream``: the aggregate whose stream it is appended to (``chat``, ``message`` or
  ``read``); :func:`stream_of` names the stream, the domain's ``evolve_*`` fold the events of
  their aggregate, point-in-time state folds them the same way;
- ``rows``: which read rows it changes (``talk``, ``participant``, ``message``), which the
  replay uses to load and fold the rows a chunk touches;
- ``published_as``, ``resource`` and ``description``: its name on the published stream, the
  resource its ``data`` holds, and what it means (the AsyncAPI document and the gateway's
  feed are made from these).

:data:`EVENT_CLASSES` lists them all; a new event added there is known everywhere except in
the code that must say what it does (its applier in ``projector/read_model.py``, its row
fold in ``query_api/resources.py``, its ``decide``/``evolve`` case), and
``tests/unit/test_event_catalogue.py`` names whatever is missing (README, "Adding an
event").
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
    stream: ClassVar[str]  # one of STREAM_KINDS
    rows: ClassVar[frozenset[str]]  # a subset of ROW_KINDS
    published_as: ClassVar[str]
    resource: ClassVar[str]  # one of RESOURCES
    description: ClassVar[str]


STREAM_KINDS = ("chat", "message", "read")
ROW_KINDS = ("talk", "participant", "message")
RESOURCES = ("Talk", "Participant", "Message")

_TALK = frozenset({"talk"})
_MEMBERSHIP = frozenset({"talk", "participant"})
_MESSAGE = frozenset({"message"})
_POST = frozenset({"message", "talk"})  # a post also moves the talk's counters and last message
_MARKER = frozenset({"participant"})


class Media(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    type: str
    url: str
    name: str = ""


# --- the chat stream (``chat-<id>``): the talk and its membership -------------------------


class ChatCreated(Event):
    event_type: ClassVar[str] = "ChatCreated"
    stream: ClassVar[str] = "chat"
    rows: ClassVar[frozenset[str]] = _TALK
    published_as: ClassVar[str] = "chat_created"
    resource: ClassVar[str] = "Talk"
    description: ClassVar[str] = (
        "A talk was created. `audience`: the participants it was created with."
    )

    chat_id: UUID
    customer_id: UUID
    type: Literal["normal", "group"]
    name: str
    detail: str
    tm_create: datetime


class ChatUpdated(Event):
    event_type: ClassVar[str] = "ChatUpdated"
    stream: ClassVar[str] = "chat"
    rows: ClassVar[frozenset[str]] = _TALK
    published_as: ClassVar[str] = "chat_updated"
    resource: ClassVar[str] = "Talk"
    description: ClassVar[str] = "A talk's name or detail changed."

    chat_id: UUID
    name: str | None = None
    detail: str | None = None
    tm_update: datetime


class ChatDeleted(Event):
    event_type: ClassVar[str] = "ChatDeleted"
    stream: ClassVar[str] = "chat"
    rows: ClassVar[frozenset[str]] = _TALK
    published_as: ClassVar[str] = "chat_deleted"
    resource: ClassVar[str] = "Talk"
    description: ClassVar[str] = "A talk was deleted (soft: `tm_delete` is set)."

    chat_id: UUID
    tm_delete: datetime


class ChatClosed(Event):
    """The talk closed: asked for (``closed``) or its last participant left (``all_left``).
    A closed talk refuses posts, edits, reactions and new participants; reads go on."""

    event_type: ClassVar[str] = "ChatClosed"
    stream: ClassVar[str] = "chat"
    rows: ClassVar[frozenset[str]] = _TALK
    published_as: ClassVar[str] = "chat_closed"
    resource: ClassVar[str] = "Talk"
    description: ClassVar[str] = (
        "A talk was closed (`status` `closed`): by a participant, or by itself when its "
        "last participant left. `audience`: the participants."
    )

    chat_id: UUID
    reason: Literal["closed", "all_left"]
    tm_close: datetime


class ChatReopened(Event):
    event_type: ClassVar[str] = "ChatReopened"
    stream: ClassVar[str] = "chat"
    rows: ClassVar[frozenset[str]] = _TALK
    published_as: ClassVar[str] = "chat_reopened"
    resource: ClassVar[str] = "Talk"
    description: ClassVar[str] = (
        "A closed talk was reopened (`status` `active`). `audience`: the participants."
    )

    chat_id: UUID
    tm_reopen: datetime


class ParticipantJoined(Event):
    event_type: ClassVar[str] = "ParticipantJoined"
    stream: ClassVar[str] = "chat"
    rows: ClassVar[frozenset[str]] = _MEMBERSHIP
    published_as: ClassVar[str] = "participant_joined"
    resource: ClassVar[str] = "Participant"
    description: ClassVar[str] = (
        "An agent joined a talk. `audience`: the participants, the new one included; for the "
        "joins a talk is created with, the joining agent alone (the others learn the members "
        "from `chat_created`).")

    chat_id: UUID
    participant_id: UUID
    owner_type: Literal["agent"]
    owner_id: UUID
    tm_joined: datetime


class ParticipantLeft(Event):
    event_type: ClassVar[str] = "ParticipantLeft"
    stream: ClassVar[str] = "chat"
    rows: ClassVar[frozenset[str]] = _MEMBERSHIP
    published_as: ClassVar[str] = "participant_left"
    resource: ClassVar[str] = "Participant"
    description: ClassVar[str] = (
        "A participant was removed (hard delete); `data` is the removed participant. "
        "`audience` includes them, so their client learns it."
    )

    chat_id: UUID
    participant_id: UUID
    owner_type: Literal["agent"]
    owner_id: UUID
    tm_left: datetime


# --- the message stream (``message-<id>``): one message, its edits and reactions ----------


class MessagePosted(Event):
    """``mentions``: the participants its text names as ``<@agent-id>`` when it was posted
    (added in Talk 1.1 with a default, so older payloads read as mentioning nobody)."""

    event_type: ClassVar[str] = "MessagePosted"
    stream: ClassVar[str] = "message"
    rows: ClassVar[frozenset[str]] = _POST
    published_as: ClassVar[str] = "message_created"
    resource: ClassVar[str] = "Message"
    description: ClassVar[str] = (
        "A message was posted (also the `system` message of a join or leave)."
    )

    message_id: UUID
    chat_id: UUID
    parent_id: UUID | None = None
    owner_type: Literal["agent", "system"]
    owner_id: UUID
    type: Literal["normal", "system"]
    text: str
    medias: tuple[Media, ...] = ()
    mentions: tuple[UUID, ...] = ()
    tm_create: datetime


class MessageEdited(Event):
    event_type: ClassVar[str] = "MessageEdited"
    stream: ClassVar[str] = "message"
    rows: ClassVar[frozenset[str]] = _MESSAGE
    published_as: ClassVar[str] = "message_updated"
    resource: ClassVar[str] = "Message"
    description: ClassVar[str] = "A message's text was edited."

    message_id: UUID
    chat_id: UUID
    text: str
    mentions: tuple[UUID, ...] = ()  # re-evaluated on the new text
    tm_update: datetime


class MessageDeleted(Event):
    event_type: ClassVar[str] = "MessageDeleted"
    stream: ClassVar[str] = "message"
    rows: ClassVar[frozenset[str]] = _MESSAGE
    published_as: ClassVar[str] = "message_deleted"
    resource: ClassVar[str] = "Message"
    description: ClassVar[str] = "A message was deleted: `data` is its tombstone."

    message_id: UUID
    chat_id: UUID
    tm_delete: datetime


class ReactionAdded(Event):
    event_type: ClassVar[str] = "ReactionAdded"
    stream: ClassVar[str] = "message"
    rows: ClassVar[frozenset[str]] = _MESSAGE
    published_as: ClassVar[str] = "reaction_added"
    resource: ClassVar[str] = "Message"
    description: ClassVar[str] = "A reaction was added; `data` is the message with its reactions."

    message_id: UUID
    chat_id: UUID
    emoji: str
    owner_type: Literal["agent"]
    owner_id: UUID
    tm_create: datetime


class ReactionRemoved(Event):
    event_type: ClassVar[str] = "ReactionRemoved"
    stream: ClassVar[str] = "message"
    rows: ClassVar[frozenset[str]] = _MESSAGE
    published_as: ClassVar[str] = "reaction_removed"
    resource: ClassVar[str] = "Message"
    description: ClassVar[str] = "A reaction was removed; `data` is the message with its reactions."

    message_id: UUID
    chat_id: UUID
    emoji: str
    owner_type: Literal["agent"]
    owner_id: UUID
    tm_remove: datetime


# --- the read stream (``read-<chat_id>-<agent_id>``): one agent's read marker in one talk ---


class ChatRead(Event):
    """An agent read a talk up to a message (``message_tm_create`` orders markers). On a
    stream of its own, so marking read never contends with posting."""

    event_type: ClassVar[str] = "ChatRead"
    stream: ClassVar[str] = "read"
    rows: ClassVar[frozenset[str]] = _MARKER
    published_as: ClassVar[str] = "chat_read"
    resource: ClassVar[str] = "Participant"
    description: ClassVar[str] = (
        "A participant's read marker moved forward; `data` is that participant. "
        "`audience`: the reader alone (their other devices update)."
    )

    chat_id: UUID
    participant_id: UUID
    owner_type: Literal["agent"]
    owner_id: UUID
    message_id: UUID
    message_tm_create: datetime
    tm_read: datetime


EVENT_CLASSES: tuple[type[Event], ...] = (
    ChatCreated,
    ChatUpdated,
    ChatDeleted,
    ChatClosed,
    ChatReopened,
    ParticipantJoined,
    ParticipantLeft,
    MessagePosted,
    MessageEdited,
    MessageDeleted,
    ReactionAdded,
    ReactionRemoved,
    ChatRead,
)

EVENT_TYPES: dict[str, type[Event]] = {cls.event_type: cls for cls in EVENT_CLASSES}

PUBLISHED_NAMES: dict[str, str] = {cls.event_type: cls.published_as for cls in EVENT_CLASSES}
"""Stored event type -> its name on the published stream."""


def events_on(stream: str) -> tuple[type[Event], ...]:
    """The event classes appended to streams of kind ``stream``."""
    return tuple(cls for cls in EVENT_CLASSES if cls.stream == stream)


def types_changing(row: str) -> frozenset[str]:
    """The stored type names of the events that change read rows of kind ``row``."""
    return frozenset(cls.event_type for cls in EVENT_CLASSES if row in cls.rows)


def chat_stream(chat_id: UUID) -> str:
    return f"chat-{chat_id}"


def message_stream(message_id: UUID) -> str:
    return f"message-{message_id}"


def read_stream(chat_id: UUID, agent_id: UUID) -> str:
    return f"read-{chat_id}-{agent_id}"


def stream_of(event: Event) -> str:
    """The stream ``event`` is appended to: ``chat-<id>`` for a talk's own events,
    ``message-<id>`` for a message's (including the system messages of joins and leaves),
    ``read-<chat_id>-<agent_id>`` for an agent's read marker."""
    match event.stream:
        case "chat":
            return chat_stream(event.chat_id)  # type: ignore[attr-defined]
        case "message":
            return message_stream(event.message_id)  # type: ignore[attr-defined]
        case "read":
            return read_stream(event.chat_id, event.owner_id)  # type: ignore[attr-defined]
    raise TypeError(f"no stream for {type(event).__name__}")
