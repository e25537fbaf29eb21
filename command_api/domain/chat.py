"""The talk aggregate (stream ``chat-<id>``): its state, ``evolve_chat`` and ``decide_chat``.

Checks run in one order for every command: 404 (no such talk, or another customer's),
403 (the caller is not a participant), 400 (bad input), 409 (the state forbids it).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from command_api.domain import rules
from command_api.domain.commands import (
    AddParticipant,
    ChatCommand,
    CloseChat,
    CreateChat,
    DeleteChat,
    RemoveParticipant,
    ReopenChat,
    UpdateChat,
)
from command_api.domain.errors import Conflict, Forbidden, Invalid, NotFound
from events.catalogue import (
    ChatClosed,
    ChatCreated,
    ChatDeleted,
    ChatReopened,
    ChatUpdated,
    Event,
    MessagePosted,
    ParticipantJoined,
    ParticipantLeft,
    events_on,
)

CHAT_EVENTS: tuple[type[Event], ...] = events_on("chat")


@dataclass(frozen=True, slots=True)
class ChatState:
    """A talk as folded from its stream. ``participants`` holds ``(owner_id, participant_id)``
    pairs in join order; ``version`` is the number of chat-stream events folded."""

    exists: bool = False
    chat_id: UUID | None = None
    customer_id: UUID | None = None
    type: str = ""
    name: str = ""
    detail: str = ""
    deleted: bool = False
    participants: tuple[tuple[UUID, UUID], ...] = ()
    version: int = 0
    closed: bool = False
    # who may reopen it: the participants when it closed (the last to leave, if all left)
    closed_members: frozenset[UUID] = frozenset()
    last_left: UUID | None = None
    member_ids: frozenset[UUID] = frozenset()  # the owners of ``participants``, for lookups

    @property
    def member_count(self) -> int:
        return len(self.participants)

    @property
    def owner_ids(self) -> tuple[UUID, ...]:
        return tuple(owner for owner, _ in self.participants)

    def is_participant(self, owner_id: UUID) -> bool:
        return owner_id in self.member_ids  # O(1): a post into a talk of 1,000 costs as into 2

    def participant_id_of(self, owner_id: UUID) -> UUID | None:
        return next((pid for owner, pid in self.participants if owner == owner_id), None)

    def owner_of(self, participant_id: UUID) -> UUID | None:
        return next((owner for owner, pid in self.participants if pid == participant_id), None)

    def is_full(self) -> bool:
        return self.type == "normal" and self.member_count >= rules.NORMAL_CHAT_MAX_PARTICIPANTS


def evolve_chat(state: ChatState, event: Event) -> ChatState:
    """Fold one event. Events of other aggregates are ignored; never raises."""
    if not isinstance(event, CHAT_EVENTS):
        return state
    state = replace(state, version=state.version + 1)
    match event:
        case ChatCreated() if not state.exists:
            return replace(
                state, exists=True, chat_id=event.chat_id, customer_id=event.customer_id,
                type=event.type, name=event.name, detail=event.detail,
            )
        case ChatUpdated():
            return replace(
                state,
                name=state.name if event.name is None else event.name,
                detail=state.detail if event.detail is None else event.detail,
            )
        case ChatDeleted():
            return replace(state, deleted=True)
        case ParticipantJoined():
            others = tuple(p for p in state.participants if p[0] != event.owner_id)
            return replace(state, participants=(*others, (event.owner_id, event.participant_id)),
                           member_ids=state.member_ids | {event.owner_id})
        case ParticipantLeft():
            kept = tuple(p for p in state.participants if p[1] != event.participant_id)
            return replace(state, participants=kept, last_left=event.owner_id,
                           member_ids=frozenset(owner for owner, _ in kept))
        case ChatClosed():
            members = frozenset(state.owner_ids) or frozenset(
                () if state.last_left is None else (state.last_left,))
            return replace(state, closed=True, closed_members=members)
        case ChatReopened():
            return replace(state, closed=False, closed_members=frozenset())
    return state


def fold_chat(events: Iterable[Event], state: ChatState | None = None) -> ChatState:
    state = state or ChatState()
    for event in events:
        state = evolve_chat(state, event)
    return state


# --- decide -----------------------------------------------------------------------------------


def decide_chat(state: ChatState, command: ChatCommand) -> list[Event]:
    """The events ``command`` records against the talk ``state``, or a :class:`DomainError`.

    Joins and leaves also return their system ``MessagePosted`` (each for its own message
    stream ``message-<id>``), right after the ``ParticipantJoined``/``ParticipantLeft``; a
    creation returns its joins, then one system message for them all (``"<creator> and
    <n> others joined the talk"``), so its cost grows linearly with its members."""
    match command:
        case CreateChat():
            return _create(state, command)
        case UpdateChat():
            return _update(state, command)
        case DeleteChat():
            return _delete(state, command)
        case AddParticipant():
            return _add(state, command)
        case RemoveParticipant():
            return _remove(state, command)
        case CloseChat():
            return _close(state, command)
        case ReopenChat():
            return _reopen(state, command)
    raise TypeError(f"not a chat command: {type(command).__name__}")


def require_chat(state: ChatState, customer_id: UUID, chat_id: UUID | None = None) -> None:
    """404 unless the talk exists and belongs to the customer (never 403 across tenants)."""
    if (
        not state.exists
        or state.customer_id != customer_id
        or (chat_id is not None and state.chat_id != chat_id)
    ):
        raise NotFound("talk not found", "talk-not-found")


def require_participant(state: ChatState, actor_id: UUID, doing: str) -> None:
    if not state.is_participant(actor_id):
        raise Forbidden(f"only participants of the talk may {doing}", "not-a-participant")


def require_live(state: ChatState) -> None:
    if state.deleted:
        raise Conflict("the talk is deleted", "talk-deleted")


def require_open(state: ChatState) -> None:
    """409 ``talk-closed``: a closed talk takes no posts, edits, reactions or members."""
    if state.closed:
        raise Conflict("the talk is closed; reopen it first", "talk-closed")


def _joined(chat_id: UUID, owner_id: UUID, participant_id: UUID, message_id: UUID,
            now: datetime) -> list[Event]:
    return [
        ParticipantJoined(chat_id=chat_id, participant_id=participant_id,
                          owner_type="agent", owner_id=owner_id, tm_joined=now),
        system_message(chat_id, message_id, owner_id, "joined", now),
    ]


def system_message(chat_id: UUID, message_id: UUID, owner_id: UUID, verb: str,
                   now: datetime) -> MessagePosted:
    """The ``system`` message a join or leave posts: ``"<owner_id> joined the talk"``."""
    return MessagePosted(
        message_id=message_id, chat_id=chat_id, parent_id=None, owner_type="system",
        owner_id=owner_id, type="system", text=f"{owner_id} {verb} the talk", tm_create=now,
    )


def _create(state: ChatState, cmd: CreateChat) -> list[Event]:
    errors = rules.chat_type_errors(cmd.type) + rules.name_errors(cmd.name)
    errors += rules.detail_errors(cmd.detail)
    for i, p in enumerate(cmd.participants):
        errors += rules.owner_type_errors(p.owner_type, f"participants[{i}].owner_type")
    if errors:
        raise Invalid("the talk is invalid", errors)
    if state.exists:
        raise Conflict("the talk already exists", "talk-exists")
    members = [(cmd.actor_id, cmd.creator_participant_id)]
    seen = {cmd.actor_id}
    for p in cmd.participants:
        if p.owner_id not in seen:
            seen.add(p.owner_id)
            members.append((p.owner_id, p.participant_id))
    if cmd.type == "normal" and len(members) > rules.NORMAL_CHAT_MAX_PARTICIPANTS:
        raise Conflict(
            f"a normal talk holds at most {rules.NORMAL_CHAT_MAX_PARTICIPANTS} participants",
            "talk-full")
    if len(members) > rules.TALK_MAX_MEMBERS:
        raise Conflict(f"a talk holds at most {rules.TALK_MAX_MEMBERS:,} participants"
                       f" (the creator included); {len(members):,} were asked for",
                       "too-many-members")
    events: list[Event] = [
        ChatCreated(chat_id=cmd.chat_id, customer_id=cmd.customer_id, type=cmd.type,
                    name=cmd.name or "", detail=cmd.detail or "", tm_create=cmd.now)
    ]
    events += [
        ParticipantJoined(chat_id=cmd.chat_id, participant_id=participant_id,
                          owner_type="agent", owner_id=owner_id, tm_joined=cmd.now)
        for owner_id, participant_id in members
    ]
    # One system message for the whole creation: a message per member would be published
    # to every member, N times N.
    others = len(members) - 1
    verb = "joined" if not others else f"and {others} other{'s' if others > 1 else ''} joined"
    events.append(MessagePosted(
        message_id=cmd.creator_system_message_id, chat_id=cmd.chat_id, parent_id=None,
        owner_type="system", owner_id=cmd.actor_id, type="system",
        text=f"{cmd.actor_id} {verb} the talk", tm_create=cmd.now))
    return events


def _update(state: ChatState, cmd: UpdateChat) -> list[Event]:
    require_chat(state, cmd.customer_id, cmd.chat_id)
    require_participant(state, cmd.actor_id, "update it")
    if cmd.name is None and cmd.detail is None:
        raise Invalid("name or detail is required",
                      [{"field": "body", "message": "name or detail is required"}])
    if errors := rules.name_errors(cmd.name) + rules.detail_errors(cmd.detail):
        raise Invalid("the talk is invalid", errors)
    require_live(state)
    return [ChatUpdated(chat_id=cmd.chat_id, name=cmd.name, detail=cmd.detail, tm_update=cmd.now)]


def _delete(state: ChatState, cmd: DeleteChat) -> list[Event]:
    require_chat(state, cmd.customer_id, cmd.chat_id)
    require_participant(state, cmd.actor_id, "delete it")
    require_live(state)
    return [ChatDeleted(chat_id=cmd.chat_id, tm_delete=cmd.now)]


def _add(state: ChatState, cmd: AddParticipant) -> list[Event]:
    require_chat(state, cmd.customer_id, cmd.chat_id)
    require_participant(state, cmd.actor_id, "add participants")
    if errors := rules.owner_type_errors(cmd.owner_type):
        raise Invalid("the participant is invalid", errors)
    require_live(state)
    require_open(state)
    if state.is_participant(cmd.owner_id):
        raise Conflict("the agent is already a participant of the talk", "already-participant")
    if state.is_full():
        raise Conflict(
            f"a normal talk holds at most {rules.NORMAL_CHAT_MAX_PARTICIPANTS} participants",
            "talk-full")
    if state.member_count >= rules.TALK_MAX_MEMBERS:
        raise Conflict(f"a talk holds at most {rules.TALK_MAX_MEMBERS:,} participants",
                       "too-many-members")
    return _joined(cmd.chat_id, cmd.owner_id, cmd.participant_id, cmd.system_message_id,
                   cmd.now)


def _remove(state: ChatState, cmd: RemoveParticipant) -> list[Event]:
    require_chat(state, cmd.customer_id, cmd.chat_id)
    require_participant(state, cmd.actor_id, "remove participants")
    require_live(state)
    owner_id = state.owner_of(cmd.participant_id)
    if owner_id is None:
        raise NotFound("participant not found in this talk", "participant-not-found")
    events: list[Event] = [
        ParticipantLeft(chat_id=cmd.chat_id, participant_id=cmd.participant_id,
                        owner_type="agent", owner_id=owner_id, tm_left=cmd.now),
        system_message(cmd.chat_id, cmd.system_message_id, owner_id, "left", cmd.now),
    ]
    if state.member_count == 1 and not state.closed:  # the last one leaves: it closes
        events.append(ChatClosed(chat_id=cmd.chat_id, reason="all_left", tm_close=cmd.now))
    return events


def _close(state: ChatState, cmd: CloseChat) -> list[Event]:
    require_chat(state, cmd.customer_id, cmd.chat_id)
    require_participant(state, cmd.actor_id, "close it")
    require_live(state)
    if state.closed:
        return []  # closing a closed talk is a no-op
    return [ChatClosed(chat_id=cmd.chat_id, reason="closed", tm_close=cmd.now)]


def _reopen(state: ChatState, cmd: ReopenChat) -> list[Event]:
    """Anyone who was a participant when it closed may reopen it; if nobody is left, the
    one reopening rejoins."""
    require_chat(state, cmd.customer_id, cmd.chat_id)
    if not (state.is_participant(cmd.actor_id)
            or (state.closed and cmd.actor_id in state.closed_members)):
        raise Forbidden("only participants (or, of a closed talk, those who were when it"
                        " closed) may reopen it", "not-a-participant")
    require_live(state)
    if not state.closed:
        return []  # reopening an active talk is a no-op
    events: list[Event] = [ChatReopened(chat_id=cmd.chat_id, tm_reopen=cmd.now)]
    if not state.is_participant(cmd.actor_id) and state.member_count == 0:
        events += _joined(cmd.chat_id, cmd.actor_id, cmd.participant_id,
                          cmd.system_message_id, cmd.now)
    return events
