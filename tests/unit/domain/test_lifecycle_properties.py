"""Property tests of Talk 1.1's commands through the pure decide/evolve functions: random
sequences of joins, leaves, closes, reopens and posts by a few agents keep the lifecycle's
invariants, and random reads never move a read marker back."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from hypothesis import given, settings
from hypothesis import strategies as st

from command_api.domain import (
    AddParticipant,
    ChatState,
    CreateChat,
    DomainError,
    MessageState,
    PostMessage,
    RemoveParticipant,
    decide_chat,
    decide_message,
    evolve_chat,
    evolve_message,
)
from command_api.domain.commands import CloseChat, MarkRead, ReopenChat
from command_api.domain.read import ReadMarker, decide_read, evolve_read
from events.catalogue import ChatClosed, MessagePosted

CUSTOMER = UUID(int=7)
CHAT = UUID(int=8)
AGENTS = [UUID(int=100 + i) for i in range(4)]
T0 = datetime(2026, 1, 1, tzinfo=UTC)

actions = st.lists(st.tuples(st.sampled_from(["add", "remove", "close", "reopen", "post"]),
                             st.sampled_from(AGENTS), st.sampled_from(AGENTS)),
                   max_size=40)


def _command(kind: str, actor: UUID, other: UUID, state: ChatState, now: datetime):
    common = {"customer_id": CUSTOMER, "actor_id": actor, "now": now}
    match kind:
        case "add":
            return AddParticipant(**common, chat_id=CHAT, owner_type="agent", owner_id=other,
                                  participant_id=uuid4(), system_message_id=uuid4())
        case "remove":
            participant = state.participant_id_of(other) or uuid4()
            return RemoveParticipant(**common, chat_id=CHAT, participant_id=participant,
                                     system_message_id=uuid4())
        case "close":
            return CloseChat(**common, chat_id=CHAT)
        case "reopen":
            return ReopenChat(**common, chat_id=CHAT, participant_id=uuid4(),
                              system_message_id=uuid4())
    return PostMessage(**common, message_id=uuid4(), chat_id=CHAT, text="hi")


@settings(max_examples=300, deadline=None)
@given(actions)
def test_a_closed_talk_never_accepts_a_post_and_an_empty_talk_is_closed(steps):
    create = CreateChat(customer_id=CUSTOMER, actor_id=AGENTS[0], now=T0, chat_id=CHAT,
                        type="group", creator_participant_id=uuid4(),
                        creator_system_message_id=uuid4())
    state = ChatState()
    for event in decide_chat(state, create):
        state = evolve_chat(state, event)
    for i, (kind, actor, other) in enumerate(steps):
        now = T0 + timedelta(seconds=i + 1)
        cmd = _command(kind, actor, other, state, now)
        try:
            if kind == "post":
                events = decide_message(state, MessageState(), cmd)
            else:
                events = decide_chat(state, cmd)
        except DomainError as refusal:
            if kind == "post" and state.closed and state.is_participant(actor):
                assert refusal.status == 409  # a closed talk refuses a participant's post
            continue
        if kind == "post":
            assert not state.closed, "a closed talk accepted a post"
            assert [type(e) for e in events] == [MessagePosted]
        was_closed = state.closed
        for event in events:
            state = evolve_chat(state, event)
        assert state.member_count > 0 or state.closed, "a talk with no participants is open"
        if kind == "remove" and state.member_count == 0 and not was_closed:
            assert any(isinstance(e, ChatClosed) and e.reason == "all_left" for e in events)


reads = st.lists(st.tuples(st.integers(0, 9), st.booleans()), min_size=1, max_size=40)


@settings(max_examples=300, deadline=None)
@given(reads)
def test_the_read_marker_never_decreases(sequence):
    chat = ChatState()
    create = CreateChat(customer_id=CUSTOMER, actor_id=AGENTS[0], now=T0, chat_id=CHAT,
                        type="group", creator_participant_id=uuid4(),
                        creator_system_message_id=uuid4())
    for event in decide_chat(chat, create):
        chat = evolve_chat(chat, event)
    messages = []
    for i in range(10):  # ten messages; some share a tm_create (ties break by id)
        posted = MessagePosted(message_id=uuid4(), chat_id=CHAT, owner_type="agent",
                               owner_id=AGENTS[0], type="normal", text=str(i),
                               tm_create=T0 + timedelta(seconds=i // 2))
        messages.append(evolve_message(MessageState(), posted))
    marker = ReadMarker()
    clock = itertools.count(1)
    for index, closed in sequence:
        if closed and not chat.closed:
            for event in decide_chat(chat, CloseChat(customer_id=CUSTOMER, actor_id=AGENTS[0],
                                                     now=T0, chat_id=CHAT)):
                chat = evolve_chat(chat, event)
        message = messages[index]
        cmd = MarkRead(customer_id=CUSTOMER, actor_id=AGENTS[0],
                       now=T0 + timedelta(minutes=next(clock)), chat_id=CHAT,
                       message_id=message.message_id)
        before = marker.marker
        events = decide_read(chat, marker, message, cmd)  # reads work in a closed talk too
        key = (message.tm_create, message.message_id)
        assert bool(events) == (before is None or key > before)
        for event in events:
            marker = evolve_read(marker, event)
        assert before is None or marker.marker >= before
        assert marker.marker >= key

