"""Builders for the domain tests: fixed ids, a fixed clock, talks and messages in a known state."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from uuid import UUID

from command_api.domain import (
    ChatState,
    CreateChat,
    DeleteChat,
    MessageState,
    NewParticipant,
    PostMessage,
    decide_chat,
    decide_message,
    fold_chat,
    fold_message,
)

CUSTOMER = UUID(int=0xC1)
OTHER_CUSTOMER = UUID(int=0xC2)
ALICE, BOB, CAROL, DAVE = (UUID(int=i) for i in range(1, 5))
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

_ids = itertools.count(10_000)


def new_id() -> UUID:
    return UUID(int=next(_ids))


def ctx(actor: UUID = ALICE, customer: UUID = CUSTOMER) -> dict:
    return {"customer_id": customer, "actor_id": actor, "now": NOW}


def invitee(owner_id: UUID, owner_type: str = "agent") -> NewParticipant:
    return NewParticipant(owner_type=owner_type, owner_id=owner_id, participant_id=new_id())


def create_cmd(actor: UUID = ALICE, type: str = "group", members: tuple[UUID, ...] = (),
               **kw) -> CreateChat:
    fields = {
        "chat_id": new_id(), "type": type, "name": "talk", "detail": "about",
        "creator_participant_id": new_id(), "creator_system_message_id": new_id(),
        "participants": tuple(invitee(m) for m in members),
    } | ctx(actor) | kw
    return CreateChat(**fields)


def a_chat(*members: UUID, type: str = "group", deleted: bool = False) -> ChatState:
    """A talk created by the first member with the others invited."""
    creator, *others = members or (ALICE,)
    state = ChatState()
    state = fold_chat(decide_chat(state, create_cmd(creator, type, tuple(others))), state)
    if deleted:
        state = fold_chat(decide_chat(state, DeleteChat(chat_id=state.chat_id, **ctx(creator))),
                          state)
    return state


def a_message(chat: ChatState, author: UUID = ALICE, text: str = "hello",
              parent: MessageState | None = None) -> MessageState:
    cmd = PostMessage(message_id=new_id(), chat_id=chat.chat_id, text=text,
                      parent_id=parent.message_id if parent else None, **ctx(author))
    return fold_message(decide_message(chat, MessageState(), cmd, parent))
