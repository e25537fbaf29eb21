"""A per-process cache of the streams commands decide on, validated by the append itself.

A command decided on cached state appends with the cached stream versions (or checks them),
so a stale entry can only make the append fail with ``ConcurrencyConflict``; the entry is
then dropped and the command decided again on fresh state. What the append cannot vouch
for is an answer given without appending (a refusal or a no-op): ``run_command`` decides
those again on fresh reads before answering. So the cache saves the read round trip and
the fold of the common path, and never changes an answer.

``load`` also keeps each cached stream decoded and folded (per fold function), so a command
on a talk with many members costs the same as on a new one: the work is done once per
version of the stream, not once per command.

The cache is bounded twice, least recently used first: ``size`` streams and ``max_bytes``
bytes of stored events (``TALK_COMMAND_STREAM_CACHE_STREAMS`` / ``_BYTES``); a stream alone
over the byte budget is served but not kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from events.catalogue import Event
from events.envelope import Checkpoint, Metadata, StoredEvent
from events.errors import ConcurrencyConflict
from events.store import AppendResult, EventStore, StreamAppend

DEFAULT_SIZE = 10_000  # streams
DEFAULT_BYTES = 64 * 1024 * 1024  # of stored events, as their data and metadata JSON
EVENT_OVERHEAD = 400  # bytes an event costs besides its JSON: objects, ids, the decoded event

Fold = Callable[[list[Event]], Any]


@dataclass
class Loaded:
    """A stream as commands use it: stored, decoded, folded (each fold computed once)."""

    stored: list[StoredEvent]
    nbytes: int = 0  # what it counts against the cache's byte budget
    _events: list[Event] | None = None
    _folds: dict[Fold, Any] = field(default_factory=dict)

    @property
    def events(self) -> list[Event]:
        if self._events is None:
            self._events = [s.decode() for s in self.stored]
        return self._events

    @property
    def head(self) -> int:
        """The position of the stream's last event (0 for a stream that does not exist)."""
        return self.stored[-1].position if self.stored else 0

    @property
    def head_checkpoint(self) -> Checkpoint:
        """Where the stream's last event stands in the global order (zero if none)."""
        last = self.stored[-1] if self.stored else None
        return Checkpoint(last.tx_id, last.position) if last else Checkpoint()

    def folded(self, fold: Fold) -> Any:
        if fold not in self._folds:
            self._folds[fold] = fold(self.events)
        return self._folds[fold]


def stream_bytes(events: Sequence[StoredEvent]) -> int:
    """What a stream's events cost the cache: their data and metadata as JSON, plus a fixed
    overhead per event (Python objects, the decoded events and folds kept alongside)."""
    return sum(len(orjson.dumps(e.data)) + len(orjson.dumps(e.metadata)) + EVENT_OVERHEAD
               for e in events)


class CachedEventStore(EventStore):
    """Serves ``read_stream`` from memory when it can; everything else goes to ``store``."""

    def __init__(self, store: EventStore, size: int = DEFAULT_SIZE,
                 max_bytes: int = DEFAULT_BYTES) -> None:
        self.store = store
        self.size = size  # streams at most
        self.max_bytes = max_bytes  # and at most this many bytes of stored events
        self.nbytes = 0
        self._streams: OrderedDict[str, Loaded] = OrderedDict()
        self.fresh = FreshReads(self)

    def _remember(self, stream_id: str, events: list[StoredEvent]) -> Loaded:
        self.forget(stream_id)
        loaded = Loaded(events, stream_bytes(events))
        if not events or loaded.nbytes > self.max_bytes:
            return loaded  # a stream that does not exist yet, or that alone is over budget
        self._streams[stream_id] = loaded
        self.nbytes += loaded.nbytes
        while len(self._streams) > self.size or self.nbytes > self.max_bytes:
            _, evicted = self._streams.popitem(last=False)  # the least recently used
            self.nbytes -= evicted.nbytes
        return loaded

    async def load(self, stream_id: str) -> Loaded:
        """The stream decoded and ready to fold, from memory when it can."""
        cached = self._streams.get(stream_id)
        if cached is None:
            return self._remember(stream_id, await self.store.read_stream(stream_id))
        self._streams.move_to_end(stream_id)
        return cached

    def forget(self, stream_id: str) -> None:
        dropped = self._streams.pop(stream_id, None)
        if dropped is not None:
            self.nbytes -= dropped.nbytes

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[StoredEvent]:
        loaded = await self.load(stream_id)
        return [e for e in loaded.stored if e.version > after_version]

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

    async def load(self, stream_id: str) -> Loaded:
        return self.cache._remember(stream_id, await self.cache.store.read_stream(stream_id))

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[StoredEvent]:
        loaded = await self.load(stream_id)
        return [e for e in loaded.stored if e.version > after_version]

    async def append(self, appends: Sequence[StreamAppend], metadata: Metadata) -> AppendResult:
        return await self.cache.append(appends, metadata)

    async def read_all(self, after: Checkpoint, limit: int) -> list[StoredEvent]:
        return await self.cache.store.read_all(after, limit)
