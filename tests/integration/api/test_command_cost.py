"""A command's cost does not grow with history: it reads only the streams it touches (the
talk's membership stream, the message's own stream, a reply's parent), never the talk's
messages; and a stream this process wrote is not read again, nor folded again from its
start: posting into a talk after 1,000 joins and leaves, or reacting to a message with 50
reactions, reads and folds exactly what the same command does in a new talk or on a new
message; a stream another writer moved on is read from the cached version on. What the cache
keeps after an append is what a fresh read gives."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from typing import Any
from uuid import UUID, uuid4

import pytest

import command_api.domain.chat as chat_domain
import command_api.domain.message as message_domain
import command_api.execution as execution
import command_api.rendering as rendering
from command_api.context import EVENT_STORE
from command_api.stream_cache import CachedEventStore, Loaded
from events import catalogue as ev
from events.envelope import Metadata, NewEvent, StoredEvent
from events.postgres_store import PostgresEventStore
from events.store import StreamAppend
from services.timefmt import utcnow
from tests.factories import chat_created, rename
from tests.factories import metadata as some_metadata
from tests.integration.api.conftest import CHATS, MESSAGES, Agent, TalkClient

HISTORY = 400  # messages in a talk
MEMBERSHIP_CHANGES = 1000  # joins and leaves of a talk
REACTIONS = 50  # on one message


class CommandWork:
    """What the command API did: events it read from the database, per stream; events it
    folded into state or into a resource row; ``decide`` calls per aggregate."""

    def __init__(self) -> None:
        self.read: Counter[str] = Counter()
        self.folded: Counter[str] = Counter()
        self.decided: Counter[str] = Counter()

    def reset(self) -> None:
        self.read.clear()
        self.folded.clear()
        self.decided.clear()

    def of(self, names: dict[str, str]) -> dict[str, Any]:
        """The work so far, streams named by what they are (``names``: stream id -> name)."""
        read = {names.get(stream, "other"): n for stream, n in self.read.items()}
        return {"read": read, "folded": dict(self.folded)}


@pytest.fixture()
def work(monkeypatch) -> CommandWork:
    """Counts the command API's reads of the database and its folds, wherever they happen
    (the projector running beside it uses neither)."""
    counted = CommandWork()
    read_stream = PostgresEventStore.read_stream

    async def counting_read(self, stream_id: str, after_version: int = 0):
        events = await read_stream(self, stream_id, after_version)
        counted.read[stream_id] += len(events)
        return events

    monkeypatch.setattr(PostgresEventStore, "read_stream", counting_read)

    def counting(module, name: str, counter: Counter[str]) -> None:
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            counter[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    counting(chat_domain, "evolve_chat", counted.folded)
    counting(message_domain, "evolve_message", counted.folded)
    counting(rendering, "evolve_chat_row", counted.folded)
    counting(rendering, "evolve_message_row", counted.folded)
    counting(execution, "decide_chat", counted.decided)
    counting(execution, "decide_message", counted.decided)
    return counted


def streams_of(chat: dict, **messages: dict) -> dict[str, str]:
    names = {ev.chat_stream(chat["id"]): "chat"}
    return names | {ev.message_stream(m["id"]): name for name, m in messages.items()}


async def _give_history(talk: TalkClient, agent: Agent, chat: dict, parent: dict) -> None:
    """HISTORY messages in the talk (half of them replies to ``parent``), appended directly."""
    store = PostgresEventStore(talk.db)
    appends = []
    for i in range(HISTORY):
        event = ev.MessagePosted(message_id=uuid4(), chat_id=chat["id"],
                                 parent_id=parent["id"] if i % 2 else None, owner_type="agent",
                                 owner_id=agent.agent_id, type="normal", text=f"old {i}",
                                 tm_create=utcnow())
        stream = ev.message_stream(event.message_id)
        appends.append(StreamAppend(stream, 0, (NewEvent(stream, event),)))
    metadata = Metadata(customer_id=agent.customer_id, actor_type="agent", actor_id=agent.agent_id)
    result = await store.append(appends, metadata)
    talk.position = max(talk.position, result.last_position)


async def _posted_in(talk: TalkClient, chat: dict) -> int:
    """How many messages the store holds for ``chat``."""
    async with talk.db.statement("test_posted_in") as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM events WHERE type = 'MessagePosted'"
                                 " AND data->>'chat_id' = %s", (chat["id"],))
        return (await cur.fetchone())["n"]


async def _message_costs(agent: Agent, chat: dict, parent: dict,
                         work: CommandWork) -> dict[str, dict]:
    """The work of each message command kind, in a talk whose parent message is ``parent``."""
    out = {}
    work.reset()
    message = await agent.post(chat, "new")
    out["post"] = work.of(streams_of(chat, message=message))
    work.reset()
    await agent.post(chat, "reply", parent_id=parent["id"])
    out["reply"] = work.of(streams_of(chat, parent=parent))
    for name, method, path, body in [
        ("react", "POST", f"{MESSAGES}/{message['id']}/reactions", {"emoji": "tada"}),
        ("edit", "PUT", f"{MESSAGES}/{message['id']}", {"text": "edited"}),
        ("delete", "DELETE", f"{MESSAGES}/{message['id']}", None),
    ]:
        work.reset()
        await agent.ok(method, path, json=body)
        out[name] = work.of(streams_of(chat, message=message))
    return out


async def test_a_command_does_not_read_the_talks_history(talk, work):
    alice = talk.agent()
    bob = alice.colleague()

    fresh = await alice.create_talk(members=(bob,))
    fresh_parent = await bob.post(fresh, "parent")
    busy = await alice.create_talk(members=(bob,))
    busy_parent = await bob.post(busy, "parent")
    await _give_history(talk, bob, busy, busy_parent)
    assert await _posted_in(talk, busy) == HISTORY + 2  # the joins', the parent

    fresh_costs = await _message_costs(alice, fresh, fresh_parent, work)
    busy_costs = await _message_costs(alice, busy, busy_parent, work)
    assert busy_costs == fresh_costs
    # The talk, the parent and the message were all written by this process: nothing is read
    # back from the database, and each command folds only what it adds.
    assert all(cost["read"] == {} for cost in fresh_costs.values()), fresh_costs
    assert fresh_costs["post"]["folded"] == {"evolve_message_row": 1}  # the answer alone
    assert fresh_costs["edit"]["folded"] == {"evolve_message": 1, "evolve_message_row": 2}


async def _membership_costs(alice: Agent, chat: dict, dave: Agent,
                            work: CommandWork) -> dict[str, dict]:
    """The work of a post after each kind of membership change (and of the change)."""
    names = streams_of(chat)
    out: dict[str, dict] = {}
    work.reset()
    joined = await alice.add(chat, dave)
    out["join"] = work.of(names)
    for step, method, path, body in [
        ("post after join", "POST", MESSAGES, None),
        ("rename", "PUT", f"{CHATS}/{chat['id']}", {"name": f"renamed {uuid4()}"}),
        ("post after rename", "POST", MESSAGES, None),
        ("leave", "DELETE", f"{CHATS}/{chat['id']}/participants/{joined['id']}", None),
        ("post after leave", "POST", MESSAGES, None),
    ]:
        work.reset()
        if body is None and method == "POST":
            body = {"chat_id": chat["id"], "type": "normal", "text": step}
        await alice.ok(method, path, json=body)
        out[step] = work.of(names)
    return out


async def _give_membership_history(talk: TalkClient, alice: Agent, chat: dict,
                                  carol: Agent) -> None:
    """MEMBERSHIP_CHANGES joins and leaves of ``carol``, appended directly to the talk."""
    store = PostgresEventStore(talk.db)
    stream = ev.chat_stream(chat["id"])
    events = []
    for _ in range(MEMBERSHIP_CHANGES // 2):
        joined = dict(chat_id=chat["id"], participant_id=uuid4(), owner_type="agent",
                      owner_id=carol.agent_id)
        events += [ev.ParticipantJoined(**joined, tm_joined=utcnow()),
                   ev.ParticipantLeft(**joined, tm_left=utcnow())]
    metadata = Metadata(customer_id=alice.customer_id, actor_type="agent", actor_id=alice.agent_id)
    version = await store.stream_version(stream)
    result = await store.append(
        [StreamAppend(stream, version, tuple(NewEvent(stream, e) for e in events))], metadata)
    talk.position = max(talk.position, result.last_position)


async def _warm_up(alice: Agent, chat: dict, carol: Agent) -> None:
    """Commands of every kind measured, through this API: each stream then stands in the
    cache as the process's appends left it, each fold and row fold computed."""
    for _ in range(5):
        joined = await alice.add(chat, carol)
        await alice.remove(chat, joined)
    await alice.ok("PUT", f"{CHATS}/{chat['id']}", json={"name": "warm"})
    await alice.post(chat, "warm")


def _warm(talk: TalkClient) -> CachedEventStore:
    return talk.client.app[EVENT_STORE]


async def test_a_post_after_a_thousand_membership_changes_costs_what_it_does_in_a_new_talk(
        talk, work):
    alice = talk.agent()
    bob, carol, dave = alice.colleague(), alice.colleague(), alice.colleague()
    fresh = await alice.create_talk(members=(bob,))
    busy = await alice.create_talk(members=(bob,))
    await _give_membership_history(talk, alice, busy, carol)
    for chat in (fresh, busy):
        await _warm_up(alice, chat, carol)
    cache = _warm(talk)
    assert cache._streams[ev.chat_stream(busy["id"])].version == 3 + MEMBERSHIP_CHANGES + 11

    fresh_costs = await _membership_costs(alice, fresh, dave, work)
    busy_costs = await _membership_costs(alice, busy, dave, work)
    assert busy_costs == fresh_costs
    assert all(cost["read"] == {} for cost in busy_costs.values()), busy_costs
    # Each command folds a change's own events, never the history: a post folds the change
    # before it into the talk's state (kept from then on) and its own message into its answer.
    for step in ("post after join", "post after rename", "post after leave"):
        assert busy_costs[step]["folded"] == {"evolve_chat": 1, "evolve_message_row": 1}, step
    assert all(sum(cost["folded"].values()) <= 2 for cost in busy_costs.values()), busy_costs
    await _assert_cached_as_read(talk, cache, ev.chat_stream(busy["id"]))


async def test_a_reaction_to_a_message_with_fifty_costs_what_the_first_does(talk, work):
    alice = talk.agent()
    agents = [alice] + [alice.colleague() for _ in range(5)]
    chat = await alice.create_talk(members=tuple(agents[1:]))
    fresh = await alice.post(chat, "fresh")
    busy = await alice.post(chat, "busy")
    for i in range(REACTIONS):
        await agents[i % 5].react(busy, f"e{i // 5}")
    assert len((await alice.get_message(busy))["metadata"]["reactions"]) == REACTIONS
    cache = _warm(talk)

    costs = {}
    for name, message in (("fresh", fresh), ("busy", busy)):
        names = streams_of(chat, message=message)
        costs[name] = {}
        await alice.ok("PUT", f"{MESSAGES}/{message['id']}", json={"text": "warm"})
        for step, caller, method, path, body in [
            ("react", agents[5], "POST", f"{MESSAGES}/{message['id']}/reactions", {"emoji": "e0"}),
            ("unreact", agents[5], "DELETE", f"{MESSAGES}/{message['id']}/reactions",
             {"emoji": "e0"}),
            ("edit", alice, "PUT", f"{MESSAGES}/{message['id']}", {"text": "edited"}),
        ]:
            work.reset()
            await caller.ok(method, path, json=body)
            costs[name][step] = work.of(names)
    assert costs["busy"] == costs["fresh"]
    assert all(cost["read"] == {} for cost in costs["busy"].values()), costs
    assert costs["busy"]["react"]["folded"] == {"evolve_message": 1, "evolve_message_row": 2}
    await _assert_cached_as_read(talk, cache, ev.message_stream(busy["id"]))


async def _assert_cached_as_read(talk: TalkClient, cache: CachedEventStore,
                                 stream_id: str) -> None:
    """The cache's entry of ``stream_id`` holds what a fresh read of the database gives:
    every stored field a command uses (``recorded_at`` is this process's clock), the decoded
    events, and every fold kept on it."""
    cached: Loaded = cache._streams[stream_id]
    read = await PostgresEventStore(talk.db).read_stream(stream_id)
    assert [_without_time(e) for e in cached.stored] == [_without_time(e) for e in read]
    fresh = Loaded(read)
    assert cached.events == fresh.events
    assert cached.head_checkpoint == fresh.head_checkpoint and cached.version == fresh.version
    for fold in (chat_domain.fold_chat, message_domain.fold_message, rendering.fold_chat_row,
                 rendering.fold_message_row, rendering.fold_joins):
        assert cached.folded(fold) == fresh.folded(fold), fold.__name__


async def test_a_stream_another_writer_moved_on_is_read_from_where_the_cache_stands(talk, work):
    """Appends by another process make the cached talk stale: the append's version check
    refuses the decision made on it, and the command reads only the events after the cached
    version, never the stream from version 0."""
    alice = talk.agent()
    bob, carol = alice.colleague(), alice.colleague()
    chat = await alice.create_talk(members=(bob,))  # cached here at version 3
    stream = ev.chat_stream(chat["id"])
    await _give_membership_history(talk, alice, chat, carol)  # another writer: versions 4-1003
    work.reset()
    await alice.post(chat, "after the other writer")
    assert work.read == {stream: MEMBERSHIP_CHANGES}
    assert work.decided == {"decide_message": 2}  # refused at version 3, then decided again

    md = Metadata(customer_id=alice.customer_id, actor_type="agent", actor_id=alice.agent_id)
    other = PostgresEventStore(talk.db)
    await other.append([rename(UUID(chat["id"]), 3 + MEMBERSHIP_CHANGES, "renamed elsewhere")], md)
    work.reset()
    renamed = await alice.ok("PUT", f"{CHATS}/{chat['id']}", json={"detail": "and here"})
    assert renamed["name"] == "renamed elsewhere" and renamed["detail"] == "and here"
    assert work.read == {stream: 1}
    await _assert_cached_as_read(talk, _warm(talk), stream)


def _without_time(event: StoredEvent) -> dict[str, Any]:
    fields = dataclasses.asdict(event)
    del fields["recorded_at"]
    return fields


async def test_racing_commands_in_one_process_decide_once_each(talk, work):
    alice = talk.agent()
    agents = [alice] + [alice.colleague() for _ in range(3)]
    chat = await alice.create_talk(members=tuple(agents[1:]))
    message = await alice.post(chat, "popular")
    work.reset()
    emoji = ("thumbsup", "heart", "tada", "eyes", "rocket")
    resps = await asyncio.gather(*(
        agent.request("POST", f"{MESSAGES}/{message['id']}/reactions", json={"emoji": e})
        for agent in agents for e in emoji))
    assert [r.status for r in resps] == [200] * 20
    # They took turns on the message's stream: none was decided twice, none read the stream
    # back (this process wrote it), and each folded one event into the message's state (the
    # post, then the reaction before it: a fold goes on when the stream is next used) and two
    # into its answer (that one and its own). Before, the i-th read and folded all i events.
    assert work.decided == {"decide_message": 20}
    assert work.of(streams_of(chat, message=message)) == {
        "read": {}, "folded": {"evolve_message": 20, "evolve_message_row": 2 * 20}}
    await _assert_cached_as_read(talk, _warm(talk), ev.message_stream(message["id"]))


async def test_an_append_to_several_streams_is_kept_as_a_read_gives_it(talk):
    """Streams given out of lock order, several events each, created then extended: the
    positions of each event come from the store's answer in the order it writes them."""
    cache = CachedEventStore(PostgresEventStore(talk.db))
    created = chat_created()
    chat, message_id = ev.chat_stream(created.chat_id), uuid4()
    message = ev.message_stream(message_id)

    def on_message(text: str) -> NewEvent:
        posted = ev.MessagePosted(message_id=message_id, chat_id=created.chat_id, parent_id=None,
                                  owner_type="agent", owner_id=uuid4(), type="normal", text=text,
                                  tm_create=utcnow())
        edited = ev.MessageEdited(message_id=message_id, chat_id=created.chat_id, text=text,
                                  tm_update=utcnow())
        return NewEvent(message, posted if text == "posted" else edited)

    def renamed(name: str) -> NewEvent:
        return NewEvent(chat, ev.ChatUpdated(chat_id=created.chat_id, name=name,
                                             tm_update=utcnow()))

    md = some_metadata(created.customer_id)
    await cache.append([StreamAppend(message, 0, (on_message("posted"), on_message("one"))),
                        StreamAppend(chat, 0, (NewEvent(chat, created), renamed("a")))], md)
    for stream in (chat, message):  # folded, so the next append extends the folds too
        for fold in (message_domain.fold_message, chat_domain.fold_chat):
            (await cache.load(stream)).folded(fold)
    await cache.append([StreamAppend(message, 2, (on_message("two"),)),
                        StreamAppend(chat, 2, (renamed("b"), renamed("c")))], md)
    assert cache._streams[chat].version == 4 and cache._streams[message].version == 3
    for stream in (chat, message):
        await _assert_cached_as_read(talk, cache, stream)
