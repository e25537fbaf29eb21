"""Property test: random command sequences from a small pool of agents, talks, messages and
emoji, run through decide/evolve like a handler would, keep the domain's invariants."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import timedelta
from uuid import UUID

from hypothesis import HealthCheck, given, settings
from hypothesis import event as tally
from hypothesis import strategies as st

from command_api.domain import (
    AddParticipant,
    AddReaction,
    ChatState,
    CreateChat,
    DeleteChat,
    DeleteMessage,
    DomainError,
    EditMessage,
    MessageState,
    NewParticipant,
    PostMessage,
    RemoveParticipant,
    RemoveReaction,
    UpdateChat,
    decide_chat,
    decide_message,
    evolve_chat,
    evolve_message,
    fold_chat,
    fold_message,
    stream_of,
)
from events.catalogue import (
    ChatCreated,
    ChatDeleted,
    Event,
    MessagePosted,
    ParticipantJoined,
    ParticipantLeft,
    ReactionAdded,
)

from .support import ALICE, BOB, CAROL, CUSTOMER, DAVE, NOW, OTHER_CUSTOMER

STRANGER = UUID(int=0x99)  # an agent of another customer
AGENTS = (ALICE, BOB, CAROL, DAVE)
ACTORS = (*AGENTS, STRANGER)
EMOJI = ("👍", "heart", "+1", "not an emoji")
TEXTS = ("hi", "", "   ", "x" * 10_001)

actor = st.sampled_from((*AGENTS, *AGENTS, STRANGER))  # a stranger now and then
ref = st.integers(0, 9)
text = st.sampled_from((*TEXTS, "hello", "hello", "hello"))
create = st.tuples(st.just("create"), actor, st.sampled_from(["normal", "group", "group", "bogus"]),
                   st.lists(st.sampled_from(AGENTS), max_size=4))
update = st.tuples(st.just("update"), actor, ref, st.sampled_from([None, "name"]),
                   st.sampled_from([None, "detail"]))
delete = st.tuples(st.just("delete"), actor, ref)
add = st.tuples(st.just("add"), actor, ref, st.sampled_from(ACTORS),
                st.sampled_from(["agent", "agent", "agent", "bot"]))
remove = st.tuples(st.just("remove"), actor, ref, st.sampled_from((*AGENTS, None)))
post = st.tuples(st.just("post"), actor, ref, st.one_of(st.none(), ref), text,
                 st.sampled_from(["normal", "normal", "normal", "system"]))
edit = st.tuples(st.just("edit"), actor, ref, text)
delete_message = st.tuples(st.just("delete_message"), actor, ref)
react = st.tuples(st.just("react"), actor, ref, st.sampled_from(EMOJI))
unreact = st.tuples(st.just("unreact"), actor, ref, st.sampled_from(EMOJI))
# Duplicates weight the draw: deleting a talk is rarer than writing into it.
OPS = st.one_of(create, update, delete, add, add, add, remove, remove, post, post, post, post,
                edit, edit, delete_message, react, react, unreact, unreact)
# Every run starts from a few live talks and a message, so most commands can succeed.
PRELUDE = [
    ("create", ALICE, "group", [BOB, CAROL]),
    ("create", BOB, "normal", [ALICE]),
    ("post", ALICE, 0, None, "hi", "normal"),
]


class World:
    """An in-memory handler: streams of events, the states folded from them."""

    def __init__(self) -> None:
        self._ids = (UUID(int=0x1_0000 + i) for i in itertools.count())
        self.step = 0
        self.streams: dict[str, list[Event]] = defaultdict(list)
        self.log: list[Event] = []  # every event in the order recorded
        self.chats: dict[UUID, ChatState] = {}
        self.messages: dict[UUID, MessageState] = {}
        self.chat_order: list[UUID] = []
        self.message_order: list[UUID] = []
        self.agent_messages: list[UUID] = []

    def new_id(self) -> UUID:
        return next(self._ids)

    def chat_id(self, i: int) -> UUID:
        return self.chat_order[i % len(self.chat_order)] if self.chat_order else self.new_id()

    def message_id(self, i: int, *, agents_only: bool = False) -> UUID:
        pool = self.agent_messages if agents_only else self.message_order
        return pool[i % len(pool)] if pool else self.new_id()

    def chat(self, chat_id: UUID | None) -> ChatState:
        return self.chats.get(chat_id, ChatState())

    def message(self, message_id: UUID | None) -> MessageState:
        return self.messages.get(message_id, MessageState())

    def apply(self, events: list[Event]) -> None:
        for event in events:
            self.log.append(event)
            self.streams[stream_of(event)].append(event)
            if isinstance(event, ChatCreated):
                self.chat_order.append(event.chat_id)
            if isinstance(event, MessagePosted):
                self.message_order.append(event.message_id)
                if event.owner_type == "agent":
                    self.agent_messages.append(event.message_id)
            if hasattr(event, "message_id"):
                self.messages[event.message_id] = evolve_message(self.message(event.message_id),
                                                                 event)
            else:
                self.chats[event.chat_id] = evolve_chat(self.chat(event.chat_id), event)

    def build(self, op: tuple):
        """The command for ``op`` and the chat it targets (for the checks)."""
        kind, who, *args = op
        self.step += 1
        base = {"customer_id": OTHER_CUSTOMER if who == STRANGER else CUSTOMER,
                "actor_id": who, "now": NOW + timedelta(seconds=self.step)}
        if kind == "create":
            chat_type, members = args
            return CreateChat(
                chat_id=self.new_id(), type=chat_type, name="n", detail="d",
                creator_participant_id=self.new_id(), creator_system_message_id=self.new_id(),
                participants=tuple(NewParticipant(owner_type="agent", owner_id=m,
                                                  participant_id=self.new_id())
                                   for m in members), **base), None
        if kind in ("update", "delete", "add", "remove", "post"):
            chat_id = self.chat_id(args[0])
            chat = self.chat(chat_id)
            if kind == "update":
                return UpdateChat(chat_id=chat_id, name=args[1], detail=args[2], **base), chat
            if kind == "delete":
                return DeleteChat(chat_id=chat_id, **base), chat
            if kind == "add":
                return AddParticipant(chat_id=chat_id, owner_type=args[2], owner_id=args[1],
                                      participant_id=self.new_id(),
                                      system_message_id=self.new_id(), **base), chat
            if kind == "remove":
                pid = (chat.participant_id_of(args[1]) if args[1] else None) or self.new_id()
                return RemoveParticipant(chat_id=chat_id, participant_id=pid,
                                         system_message_id=self.new_id(), **base), chat
            parent_id = None if args[1] is None else self.message_id(args[1])
            return PostMessage(message_id=self.new_id(), chat_id=chat_id, parent_id=parent_id,
                               text=args[2], type=args[3], **base), chat
        message_id = self.message_id(args[0], agents_only=kind in ("edit", "delete_message"))
        chat = self.chat(self.message(message_id).chat_id)
        if kind == "edit":
            return EditMessage(message_id=message_id, text=args[1], **base), chat
        if kind == "delete_message":
            return DeleteMessage(message_id=message_id, **base), chat
        cls = AddReaction if kind == "react" else RemoveReaction
        return cls(message_id=message_id, emoji=args[1], **base), chat

    def decide(self, command) -> list[Event]:
        if isinstance(command, CreateChat | UpdateChat | DeleteChat | AddParticipant
                      | RemoveParticipant):
            return decide_chat(self.chat(command.chat_id), command)
        if isinstance(command, PostMessage):
            parent = self.messages.get(command.parent_id) if command.parent_id else None
            return decide_message(self.chat(command.chat_id), self.message(command.message_id),
                                  command, parent)
        message = self.message(command.message_id)
        return decide_message(self.chat(message.chat_id), message, command)


def check_decision(world: World, command, target: ChatState | None, events: list[Event]) -> None:
    """What a decision may contain, judged against the state before it."""
    if target is not None and target.exists and target.deleted:
        assert events == [], "a deleted talk accepts no writes"
    if target is not None and target.exists and target.customer_id != command.customer_id:
        assert events == [], "no customer writes into another's talk"
    for i, event in enumerate(events):
        chat = world.chat(event.chat_id)
        assert not chat.exists or chat.customer_id == command.customer_id, "tenant isolation"
        if isinstance(event, MessagePosted) and event.owner_type == "agent":
            assert chat.is_participant(event.owner_id) and not chat.deleted
            assert event.owner_id == command.actor_id
        if isinstance(event, ReactionAdded):
            assert world.chat(event.chat_id).is_participant(event.owner_id)
        if isinstance(command, CreateChat) and isinstance(event, ParticipantJoined):
            continue  # the creation's one system message is checked below
        if isinstance(event, ParticipantJoined | ParticipantLeft):
            system = events[i + 1]
            verb = "joined" if isinstance(event, ParticipantJoined) else "left"
            assert isinstance(system, MessagePosted) and system.type == "system"
            assert system.owner_type == "system" and system.owner_id == event.owner_id
            assert system.text == f"{event.owner_id} {verb} the talk"
    if not isinstance(command, CreateChat | PostMessage):
        assert not any(isinstance(e, ChatCreated) for e in events)
    if isinstance(command, CreateChat) and events:
        joins = [e for e in events if isinstance(e, ParticipantJoined)]
        [system] = [e for e in events if isinstance(e, MessagePosted)]
        assert events[-1] is system and system.owner_id == command.actor_id
        assert len(joins) == len(events) - 2, "one system message for the whole creation"


def check_invariants(world: World) -> None:
    deleted: set[UUID] = set()
    for event in world.log:
        assert event.chat_id not in deleted, "nothing is recorded into a deleted talk"
        if isinstance(event, ChatDeleted):
            deleted.add(event.chat_id)
    for chat_id, chat in world.chats.items():
        stream = world.streams[f"chat-{chat_id}"]
        assert chat == fold_chat(stream), "incremental state equals a fold of the history"
        assert chat.version == len(stream)
        owners = [o for o, _ in chat.participants]
        pids = [p for _, p in chat.participants]
        assert len(set(owners)) == len(owners) and len(set(pids)) == len(pids)
        joins = sum(isinstance(e, ParticipantJoined) for e in stream)
        leaves = sum(isinstance(e, ParticipantLeft) for e in stream)
        assert chat.member_count == joins - leaves == len(chat.participants)
        if chat.type == "normal":
            assert chat.member_count <= 2
    for message_id, message in world.messages.items():
        stream = world.streams[f"message-{message_id}"]
        assert message == fold_message(stream) and message.version == len(stream)
        assert message.chat_id in world.chats
        assert message.type == "normal" or message.owner_type == "system"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPS, max_size=40))
def test_random_command_sequences_keep_the_invariants(ops):
    world = World()
    for op in PRELUDE:
        world.apply(world.decide(world.build(op)[0]))
    for op in ops:
        command, target = world.build(op)
        before = (dict(world.chats), dict(world.messages))
        try:
            events = world.decide(command)
        except DomainError as exc:
            assert exc.status in (400, 403, 404, 409) and exc.detail
            assert (world.chats, world.messages) == before  # a refusal changes nothing
            tally(f"{op[0]}: {type(exc).__name__}")
            continue
        tally(f"{op[0]}: {'no-op' if not events else 'ok'}")
        assert world.decide(command) == events, "decide is deterministic"
        assert (world.chats, world.messages) == before, "decide does not touch the state"
        check_decision(world, command, target, events)
        world.apply(events)
        check_invariants(world)
