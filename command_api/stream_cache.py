"""A per-process cache of the streams commands decide on, validated by the append itself.

A command decided on cached state appends with the cached stream versions (or checks them),
so a stale entry can only make the append fail with ``ConcurrencyConflict``; the entry is
then dropped and the command decided again on fresh state. What the append cannot vouch
for is an answer given without appending (a refusal or a no-op): ``run_command`` decides
those again on fresh reads before answering. So the cache saves the read round trip and
the fold of the common path, and never changes an answer.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from events.envelope import Checkpoint, Metadata, StoredEvent
from events.errors import ConcurrencyConflict
from events.store import AppendResult, EventStore, StreamAppend

DEFAULT_SIZE = 10_000


class CachedEventStore(EventStore):
    """Serves ``read_stream`` from memory when it can; everything else goes to ``store``."""

    def __init__(self, store: EventStore, size: int = DEFAULT_SIZE) -> None:
        self.store = store
        self.size = size
        self._streams: OrderedDict[str, list[StoredEvent]] = OrderedDict()
        self.fresh = FreshReads(self)

    def _remember(self, stream_id: str, events: list[StoredEvent]) -> None:
        if not events:  # a stream that does not exist yet is never cached
            self._streams.pop(stream_id, None)
            return
        self._streams[stream_id] = events
        self._streams.move_to_end(stream_id)
        while len(self._streams) > self.size:
            self._streams.popitem(last=False)

    def forget(self, stream_id: str) -> None:
        self._streams.pop(stream_id, None)

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[StoredEvent]:
        cached = self._streams.get(stream_id)
        if cached is None:
            cached = await self.store.read_stream(stream_id)
            self._remember(stream_id, cached)
        else:
            self._streams.move_to_end(stream_id)
        return [e for e in cached if e.version > after_version]

    async def append(self, appends: Sequence[StreamAppend], metadata: Metadata) -> AppendResult:
        try:
            result = await self.store.append(appends, metadata)
        except ConcurrencyConflict as exc:
            self.forget(exc.stream_id)
            raise
        for append in appends:
            if append.events:  # the stream moved on: read it afresh next time
                self.forget(append.stream_id)
        return result

    async def read_all(self, after: Checkpoint, limit: int) -> list[StoredEvent]:
        return await self.store.read_all(after, limit)

    def committed(self) -> None:
        committed = getattr(self.store, "committed", None)
        if committed is not None:
            committed()


class FreshReads(EventStore):
    """The same store, reading every stream from the database (and refreshing the cache)."""

    def __init__(self, cache: CachedEventStore) -> None:
        self.cache = cache

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[StoredEvent]:
        events = await self.cache.store.read_stream(stream_id)
        self.cache._remember(stream_id, events)
        return [e for e in events if e.version > after_version]

    async def append(self, appends: Sequence[StreamAppend], metadata: Metadata) -> AppendResult:
        return await self.cache.append(appends, metadata)

    async def read_all(self, after: Checkpoint, limit: int) -> list[StoredEvent]:
        return await self.cache.store.read_all(after, limit)
