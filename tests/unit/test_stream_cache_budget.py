"""The command stream cache is bounded in streams and in bytes: past either budget it drops
the least recently used streams, a stream alone over the byte budget is not kept, and its
byte count follows every eviction, refresh and forget."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from command_api.stream_cache import CachedEventStore, stream_bytes
from events.envelope import StoredEvent
from events.store import EventStore
from tests.factories import chat_created


def stored(stream_id: str, version: int, name: str) -> StoredEvent:
    event = chat_created(name=name)
    return StoredEvent(position=version, tx_id=1, event_id=uuid4(), stream_id=stream_id,
                       version=version, type=event.event_type,
                       schema_version=event.schema_version,
                       data=event.model_dump(mode="json"), metadata={"customer_id": "c"},
                       recorded_at=datetime.now(UTC))


class CountingStore(EventStore):
    """Streams of ``lengths[stream]`` events whose names are ``width`` characters; counts reads."""

    def __init__(self, width: int = 10) -> None:
        self.width, self.reads, self.lengths = width, [], {}

    async def read_stream(self, stream_id, after_version=0):
        self.reads.append(stream_id)
        n = self.lengths.get(stream_id, 1)
        return [stored(stream_id, v, "n" * self.width) for v in range(after_version + 1, n + 1)]

    async def append(self, appends, metadata):  # pragma: no cover - not used here
        raise NotImplementedError

    async def read_all(self, after, limit):  # pragma: no cover - not used here
        raise NotImplementedError


def one_stream_bytes(store: CountingStore, n: int = 1) -> int:
    return stream_bytes([stored("s", v, "n" * store.width) for v in range(1, n + 1)])


async def test_past_the_byte_budget_the_least_recently_used_streams_go():
    store = CountingStore()
    size = one_stream_bytes(store)
    cache = CachedEventStore(store, size=1000, max_bytes=3 * size)
    for name in ("a", "b", "c"):
        await cache.load(name)
    assert cache.nbytes == 3 * size
    await cache.load("a")  # a is now the most recently used
    await cache.load("d")  # over budget: b goes
    assert cache.nbytes == 3 * size
    store.reads.clear()
    for name in ("a", "c", "d"):
        await cache.load(name)
    assert store.reads == []  # still cached
    await cache.load("b")
    assert store.reads == ["b"]  # was evicted


async def test_the_stream_count_still_bounds_it_too():
    store = CountingStore()
    cache = CachedEventStore(store, size=2, max_bytes=10**9)
    for name in ("a", "b", "c"):
        await cache.load(name)
    assert len(cache._streams) == 2 and cache.nbytes == 2 * one_stream_bytes(store)


async def test_a_stream_alone_over_the_budget_is_served_but_not_kept():
    store = CountingStore()
    store.lengths["big"] = 50
    cache = CachedEventStore(store, size=1000, max_bytes=10 * one_stream_bytes(store))
    await cache.load("small")
    loaded = await cache.load("big")
    assert len(loaded.stored) == 50
    assert cache.nbytes == one_stream_bytes(store)  # the small one stays, the big one is not kept
    await cache.load("big")
    assert store.reads.count("big") == 2


async def test_refresh_and_forget_keep_the_count_exact():
    store = CountingStore()
    size = one_stream_bytes(store)
    cache = CachedEventStore(store, size=1000, max_bytes=100 * size)
    await cache.load("a")
    await cache.fresh.load("a")  # read again from the database: replaces, not adds
    assert cache.nbytes == size
    store.lengths["a"] = 3
    await cache.fresh.load("a")
    assert cache.nbytes == one_stream_bytes(store, 3)
    cache.forget("a")
    cache.forget("a")
    assert cache.nbytes == 0
