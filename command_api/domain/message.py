"""The message aggregate (stream ``message-<id>``): state, ``evolve_message``, ``decide_message``.

A message is decided against its talk's state (membership, deletion, tenant) and its own.
Checks run in one order: 404 (no such message or talk, or another customer's), 403 (not a
participant / not the author), 400 (bad input), 409 (talk or message deleted, id taken).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from command_api.domain import rules
from command_api.domain.chat import (
    ChatState,
    require_chat,
    require_live,
    require_open,
    require_participant,
)
from command_api.domain.commands import (
    AddReaction,
    DeleteMessage,
    EditMessage,
    MessageCommand,
    PostMessage,
    RemoveReaction,
)
from command_api.domain.errors import Conflict, FieldError, Forbidden, Invalid, NotFound
from command_api.domain.mentions import mentions_in
from events.catalogue import (
    Event,
    MessageDeleted,
    MessageEdited,
    MessagePosted,
    ReactionAdded,
    ReactionRemoved,
    events_on,
)

MESSAGE_EVENTS: tuple[type[Event], ...] = events_on("message")


@dataclass(frozen=True, slots=True)
class MessageState:
    """A message as folded from its stream. ``reactions`` holds ``(owner_id, emoji)`` pairs;
    ``version`` is the number of message-stream events folded. The tenant is the talk's."""

    exists: bool = False
    message_id: UUID | None = None
    chat_id: UUID | None = None
    parent_id: UUID | None = None
    owner_type: str = ""
    owner_id: UUID | None = None
    type: str = ""
    text: str = ""
    has_medias: bool = False  # posted with attachments: its text may be empty
    deleted: bool = False
    reactions: frozenset[tuple[UUID, str]] = frozenset()
    version: int = 0
    tm_create: datetime | None = None

    def is_author(self, agent_id: UUID) -> bool:
        return self.owner_type == "agent" and self.owner_id == agent_id


def evolve_message(state: MessageState, event: Event) -> MessageState:
    """Fold one event. Events of other aggregates are ignored; never raises."""
    if not isinstance(event, MESSAGE_EVENTS):
        return state
    state = replace(state, version=state.version + 1)
    match event:
        case MessagePosted() if not state.exists:
            return replace(
                state, exists=True, message_id=event.message_id, chat_id=event.chat_id,
                parent_id=event.parent_id, owner_type=event.owner_type,
                owner_id=event.owner_id, type=event.type, text=event.text,
                has_medias=bool(event.medias), tm_create=event.tm_create,
            )
        case MessageEdited():
            return replace(state, text=event.text)
        case MessageDeleted():
            return replace(state, deleted=True)
        case ReactionAdded():
            return replace(state, reactions=state.reactions | {(event.owner_id, event.emoji)})
        case ReactionRemoved():
            return replace(state, reactions=state.reactions - {(event.owner_id, event.emoji)})
    return state


def fold_message(events: Iterable[Event], state: MessageState | None = None) -> MessageState:
    state = state or MessageState()
    for event in events:
        state = evolve_message(state, event)
    return state


# --- decide -----------------------------------------------------------------------------------


def decide_message(
    chat: ChatState,
    message: MessageState,
    command: MessageCommand,
    parent: MessageState | None = None,
) -> list[Event]:
    """The events ``command`` records against ``message`` in talk ``chat``, or a
    :class:`DomainError`. For :class:`PostMessage`, ``message`` is the (empty) state of the new
    id and ``parent`` the state of ``command.parent_id`` when one is given."""
    match command:
        case PostMessage():
            return _post(chat, message, command, parent)
        case EditMessage():
            return _edit(chat, message, command)
        case DeleteMessage():
            return _delete(chat, message, command)
        case AddReaction():
            return _react(chat, message, command)
        case RemoveReaction():
            return _unreact(chat, message, command)
    raise TypeError(f"not a message command: {type(command).__name__}")


def _require_message(chat: ChatState, message: MessageState, command: MessageCommand) -> None:
    """404 unless the message exists, is the one asked for, and its talk is the caller's."""
    if (
        not message.exists
        or message.message_id != command.message_id
        or not chat.exists
        or message.chat_id != chat.chat_id
        or chat.customer_id != command.customer_id
    ):
        raise NotFound("message not found", "message-not-found")


def _post(chat: ChatState, message: MessageState, cmd: PostMessage,
          parent: MessageState | None) -> list[Event]:
    require_chat(chat, cmd.customer_id, cmd.chat_id)
    require_participant(chat, cmd.actor_id, "post messages")
    errors: list[FieldError] = []
    if cmd.type != "normal":
        why = "agents cannot post system messages" if cmd.type == "system" else "must be normal"
        errors.append({"field": "type", "message": why})
    errors += rules.text_errors(cmd.text, required=not cmd.medias)  # media-only is fine
    errors += rules.medias_errors(cmd.medias)
    if errors:
        raise Invalid("the message is invalid", errors)
    if cmd.parent_id is not None and not (
        parent is not None
        and parent.exists
        and parent.message_id == cmd.parent_id
        and parent.chat_id == chat.chat_id
    ):  # a well-formed id naming no message of this talk: 404, as for a path's id
        raise NotFound("parent_id is not a message of this talk", "parent-not-found")
    require_live(chat)
    require_open(chat)
    if message.exists:
        raise Conflict("a message with this id already exists", "message-exists")
    return [
        MessagePosted(
            message_id=cmd.message_id, chat_id=cmd.chat_id, parent_id=cmd.parent_id,
            owner_type="agent", owner_id=cmd.actor_id, type="normal", text=cmd.text or "",
            medias=rules.to_medias(cmd.medias), tm_create=cmd.now,
            mentions=mentions_in(cmd.text or "", chat.member_ids),
        )
    ]


def _require_author(chat: ChatState, message: MessageState, cmd: MessageCommand,
                    doing: str) -> None:
    if not message.is_author(cmd.actor_id) or not chat.is_participant(cmd.actor_id):
        raise Forbidden(f"only the author, while a participant, may {doing} the message",
                        "not-the-author")


def _edit(chat: ChatState, message: MessageState, cmd: EditMessage) -> list[Event]:
    _require_message(chat, message, cmd)
    _require_author(chat, message, cmd, "edit")
    rules.validate_text(cmd.text, required=False)
    if not message.has_medias and not cmd.text.strip():  # the message would say nothing
        raise Conflict("a message without attachments needs a text that is not blank",
                       "text-required")
    require_live(chat)
    require_open(chat)
    if message.deleted:
        raise Conflict("the message is deleted", "message-deleted")
    return [MessageEdited(message_id=cmd.message_id, chat_id=chat.chat_id, text=cmd.text,
                          mentions=mentions_in(cmd.text, chat.member_ids), tm_update=cmd.now)]


def _delete(chat: ChatState, message: MessageState, cmd: DeleteMessage) -> list[Event]:
    _require_message(chat, message, cmd)
    _require_author(chat, message, cmd, "delete")
    require_live(chat)
    if message.deleted:
        return []  # deleting again changes nothing; the handler answers the tombstone
    return [MessageDeleted(message_id=cmd.message_id, chat_id=chat.chat_id, tm_delete=cmd.now)]


def _reaction_checks(chat: ChatState, message: MessageState,
                     cmd: AddReaction | RemoveReaction) -> None:
    _require_message(chat, message, cmd)
    require_participant(chat, cmd.actor_id, "react to messages")
    rules.validate_emoji(cmd.emoji)
    require_live(chat)
    require_open(chat)
    if message.deleted:
        raise Conflict("the message is deleted", "message-deleted")


def _react(chat: ChatState, message: MessageState, cmd: AddReaction) -> list[Event]:
    _reaction_checks(chat, message, cmd)
    if (cmd.actor_id, cmd.emoji) in message.reactions:
        return []  # one (agent, emoji) pair once; adding it again is a no-op
    emoji = {e for _, e in message.reactions}
    if cmd.emoji not in emoji and len(emoji) >= rules.MESSAGE_MAX_EMOJI:
        raise Conflict(f"a message carries at most {rules.MESSAGE_MAX_EMOJI} different emoji",
                       "too-many-reactions")
    own = sum(1 for owner, _ in message.reactions if owner == cmd.actor_id)
    if own >= rules.AGENT_MAX_EMOJI_PER_MESSAGE:
        raise Conflict(f"an agent adds at most {rules.AGENT_MAX_EMOJI_PER_MESSAGE} different"
                       " emoji to one message", "too-many-reactions-by-agent")
    return [ReactionAdded(message_id=cmd.message_id, chat_id=chat.chat_id, emoji=cmd.emoji,
                          owner_type="agent", owner_id=cmd.actor_id, tm_create=cmd.now)]


def _unreact(chat: ChatState, message: MessageState, cmd: RemoveReaction) -> list[Event]:
    _reaction_checks(chat, message, cmd)
    if (cmd.actor_id, cmd.emoji) not in message.reactions:
        return []  # removing a reaction that is not there is a no-op
    return [ReactionRemoved(message_id=cmd.message_id, chat_id=chat.chat_id, emoji=cmd.emoji,
                            owner_type="agent", owner_id=cmd.actor_id, tm_remove=cmd.now)]
