"""Commands: what a caller asks for, as immutable values.

Every command carries the tenant (``customer_id``), the calling agent (``actor_id``) and the
clock (``now``, timezone-aware UTC). The handler generates every new id (talk, participant and
system message ids) and passes it in, so ``decide`` stays pure and deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from events.catalogue import Media


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    customer_id: UUID
    actor_id: UUID
    now: datetime

    def __post_init__(self) -> None:
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError("a command's now must be timezone-aware")


@dataclass(frozen=True, slots=True, kw_only=True)
class NewParticipant:
    """A member requested at talk creation, with the participant id its join will use."""

    owner_type: str
    owner_id: UUID
    participant_id: UUID


# --- the talk ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateChat(Command):
    """Create a talk. The creator (``actor_id``) joins first with ``creator_participant_id``;
    then each of ``participants`` in order, deduplicated by owner (the first entry wins and the
    creator listed again is skipped); one system message (``creator_system_message_id``)
    says they joined."""

    chat_id: UUID
    type: str
    name: str = ""
    detail: str = ""
    creator_participant_id: UUID
    creator_system_message_id: UUID
    participants: tuple[NewParticipant, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateChat(Command):
    chat_id: UUID
    name: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteChat(Command):
    chat_id: UUID


@dataclass(frozen=True, slots=True, kw_only=True)
class AddParticipant(Command):
    chat_id: UUID
    owner_type: str
    owner_id: UUID
    participant_id: UUID
    system_message_id: UUID


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveParticipant(Command):
    chat_id: UUID
    participant_id: UUID
    system_message_id: UUID


# --- messages -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class PostMessage(Command):
    message_id: UUID
    chat_id: UUID
    parent_id: UUID | None = None
    type: str = "normal"
    text: str = ""
    medias: tuple[Media, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class EditMessage(Command):
    message_id: UUID
    text: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteMessage(Command):
    message_id: UUID


@dataclass(frozen=True, slots=True, kw_only=True)
class AddReaction(Command):
    message_id: UUID
    emoji: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RemoveReaction(Command):
    message_id: UUID
    emoji: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseChat(Command):
    chat_id: UUID


@dataclass(frozen=True, slots=True, kw_only=True)
class ReopenChat(Command):
    """Reopen a closed talk; a former participant of an empty talk rejoins with these ids."""

    chat_id: UUID
    participant_id: UUID
    system_message_id: UUID


@dataclass(frozen=True, slots=True, kw_only=True)
class MarkRead(Command):
    """Move the caller's read marker in ``chat_id`` to ``message_id`` (None: the talk has no
    message yet, nothing to read)."""

    chat_id: UUID
    message_id: UUID | None


ChatCommand = (CreateChat | UpdateChat | DeleteChat | AddParticipant | RemoveParticipant
               | CloseChat | ReopenChat)
MessageCommand = PostMessage | EditMessage | DeleteMessage | AddReaction | RemoveReaction
