"""A command reads only the streams it touches (the talk's membership stream, the message's
own stream, a reply's parent), never the talk's history: posting into a talk with a long
history reads exactly as many events as posting into a new one."""

from __future__ import annotations

import asyncio
from collections import Counter
from uuid import uuid4

import pytest

from command_api.stream_cache import CachedEventStore, FreshReads
from events import catalogue as ev
from events.envelope import Metadata, NewEvent
from events.postgres_store import PostgresEventStore
from events.store import StreamAppend
from services.timefmt import utcnow
from tests.integration.api.conftest import MESSAGES, Agent

HISTORY = 400


class StreamReads:
    """Which streams the command API read, and how many events each read returned."""

    def __init__(self) -> None:
        self.events: Counter[str] = Counter()

    def reset(self) -> None:
        self.events.clear()

    def by_kind(self, chat_id: str, message_ids: dict[str, str]) -> dict[str, int]:
        """The reads keyed by what the stream is (``chat``, or a name from ``message_ids``)."""
        names = {ev.chat_stream(chat_id): "chat"}
        names |= {ev.message_stream(mid): name for name, mid in message_ids.items()}
        return {names.get(stream, stream): n for stream, n in self.events.items()}


@pytest.fixture()
def stream_reads(monkeypatch) -> StreamReads:
    """Counts what ``decide`` consults, whether served from the command API's stream cache
    or read from the database."""
    reads = StreamReads()
    for cls in (CachedEventStore, FreshReads):
        original = cls.load

        async def counting(self, stream_id: str, _original=original):
            loaded = await _original(self, stream_id)
            reads.events[stream_id] += len(loaded.stored)
            return loaded

        monkeypatch.setattr(cls, "load", counting)
    return reads


async def _give_history(talk, agent: Agent, chat: dict, parent: dict) -> None:
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


async def _costs(agent: Agent, chat: dict, parent: dict, reads: StreamReads) -> dict[str, dict]:
    """The stream reads of each command kind, in a talk whose parent message is ``parent``."""
    out = {}
    reads.reset()
    message = await agent.post(chat, "new")
    out["post"] = reads.by_kind(chat["id"], {"message": message["id"]})
    reads.reset()
    await agent.post(chat, "reply", parent_id=parent["id"])
    out["reply"] = reads.by_kind(chat["id"], {"parent": parent["id"]})
    for name, method, path, body in [
        ("react", "POST", f"{MESSAGES}/{message['id']}/reactions", {"emoji": "tada"}),
        ("edit", "PUT", f"{MESSAGES}/{message['id']}", {"text": "edited"}),
        ("delete", "DELETE", f"{MESSAGES}/{message['id']}", None),
    ]:
        reads.reset()
        await agent.ok(method, path, json=body)
        out[name] = reads.by_kind(chat["id"], {"message": message["id"]})
    return out


async def test_a_command_does_not_read_the_talks_history(talk, stream_reads):
    alice = talk.agent()
    bob = alice.colleague()

    fresh = await alice.create_talk(members=(bob,))
    fresh_parent = await bob.post(fresh, "parent")
    busy = await alice.create_talk(members=(bob,))
    busy_parent = await bob.post(busy, "parent")
    await _give_history(talk, bob, busy, busy_parent)
    assert len(await alice.messages(busy, page_size=100)) == HISTORY + 2  # the joins', the parent

    fresh_costs = await _costs(alice, fresh, fresh_parent, stream_reads)
    busy_costs = await _costs(alice, busy, busy_parent, stream_reads)
    assert busy_costs == fresh_costs
    # Exactly the streams each command touches, each of a handful of events.
    assert fresh_costs["post"] == {"chat": 3}  # created, two joins
    assert fresh_costs["reply"] == {"chat": 3, "parent": 1}
    assert fresh_costs["react"] == {"chat": 3, "message": 1}
    assert fresh_costs["edit"] == {"chat": 3, "message": 2}
    assert fresh_costs["delete"] == {"chat": 3, "message": 3}


async def test_racing_commands_in_one_process_decide_once_each(talk, stream_reads):
    alice = talk.agent()
    agents = [alice] + [alice.colleague() for _ in range(3)]
    chat = await alice.create_talk(members=tuple(agents[1:]))
    message = await alice.post(chat, "popular")
    stream_reads.reset()
    emoji = ("thumbsup", "heart", "tada", "eyes", "rocket")
    resps = await asyncio.gather(*(
        agent.request("POST", f"{MESSAGES}/{message['id']}/reactions", json={"emoji": e})
        for agent in agents for e in emoji))
    assert [r.status for r in resps] == [200] * 20
    # They took turns on the message's stream: none was decided twice. The i-th read the
    # i-1 reactions before it (plus the post): 1 + 2 + ... + 20 events in all.
    reads = stream_reads.by_kind(chat["id"], {"message": message["id"]})
    assert reads == {"chat": 20 * 5, "message": sum(range(1, 21))}
