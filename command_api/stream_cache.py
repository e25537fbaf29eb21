"""A per-process cache of the streams commands decide on, validated by the append itself.

A command decided on cached state appends with the cached stream versions (or checks them),
so a stale entry can only make the append fail with ``ConcurrencyConflict``; the entry is
then brought up to date (below) and the command decided again on fresh state. What the append cannot vouch
for is an answer given without appending (a refusal or a no-op): ``run_command`` decides
those again on fresh reads before answering. So the cache saves the read round trip and
the fold of the common path, and never changes an answer.

``load`` also keeps each cached stream decoded and folded (per fold function), so a command
on a talk with many members costs the same as on a new one: the work is done once per
version of the stream, not once per command.

An append by this process keeps the stream: after it commits, the cached entry is extended
with the events appended (:meth:`Loaded.extended`: their positions, transaction and versions
come from the append, each fold goes on from its state over the new events alone), and a
stream the append created is cached from them. So a reaction does not read back the earlier
reactions of its message, nor a post the joins and leaves of its talk: the reads and the fold
work of a command are those of the events it adds, whatever the stream's history. The
extension is made only onto an entry at exactly the version the append expected (it then
holds what a fresh read would give, its ``recorded_at`` aside: this process's clock at the
append, not the server's, and no command reads it); otherwise the entry is dropped.

A stream another writer moved on (another process's append, found by a conflict) is not
read again from version 0 either: the entry is marked stale, and the next load reads the
events after its version and extends it (:meth:`CachedEventStore.refresh`); fresh reads
(``FreshReads``) do the same.

The cache is bounded twice, least recently used first: ``size`` streams and ``max_bytes``
bytes of stored events (``TALK_COMMAND_STREAM_CACHE_STREAMS`` / ``_BYTES``); a stream alone
over the byte budget is served but not kept.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from events.catalogue import Event
from events.envelope import Checkpoint, Metadata, StoredEvent
from events.errors import ConcurrencyConflict
from events.store import AppendResult, EventStore, StreamAppend, flatten

DEFAULT_SIZE = 10_000  # streams
DEFAULT_BYTES = 64 * 1024 * 1024  # of stored events, as their data and metadata JSON
EVENT_OVERHEAD = 400  # bytes an event costs besides its JSON: objects, ids, the decoded event

# ``fold(events)`` folds from the start; ``fold(events, state)`` goes on from ``state``
# (command_api.domain's folds, and rendering's row folds). A fold never changes ``state``.
Fold = Callable[..., Any]


@dataclass
class Loaded:
    """A stream as commands use it: stored, decoded, folded (each fold computed once).

    An entry made by :meth:`extended` keeps the entry it grew from (``_base``) and the events
    added (``_more``), so that any fold of the base, even one computed after the extension
    (as a command's answer does, after its append), goes on over the added events alone. The
    link is cut when this entry is extended in turn: one step back at most."""

    stored: list[StoredEvent]
    nbytes: int = 0  # what it counts against the cache's byte budget
    _events: list[Event] | None = None
    _folds: dict[Fold, Any] = field(default_factory=dict)
    _base: Loaded | None = None
    _more: list[Event] | None = None  # decoded: the events after ``_base``

    @property
    def events(self) -> list[Event]:
        if self._events is None:
            base = self._base
            if base is not None and base._events is not None:
                self._events = [*base._events, *self._added()]
            else:
                self._events = [s.decode() for s in self.stored]
        return self._events

    @property
    def version(self) -> int:
        """The stream's version: the number of its events (0 for a stream that does not exist)."""
        return self.stored[-1].version if self.stored else 0

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
            base = self._base
            if base is not None and fold in base._folds:
                self._folds[fold] = fold(self._added(), base._folds[fold])
            else:
                self._folds[fold] = fold(self.events)
        return self._folds[fold]

    def _added(self) -> list[Event]:
        if self._more is None:
            n = len(self.stored) - len(self._base.stored) if self._base is not None else 0
            self._more = [s.decode() for s in self.stored[len(self.stored) - n:]] if n else []
        return self._more

    def _settle(self) -> None:
        """Take over the folds of the base this entry grew from, then let the base go."""
        base = self._base
        if base is None:
            return
        for fold in base._folds:
            self.folded(fold)
        if self._events is None and base._events is not None:
            self.events  # noqa: B018 - decoded from the base's, while it is at hand
        self._base, self._more = None, None

    def extended(self, more: list[StoredEvent]) -> Loaded:
        """The stream with ``more`` (its next events) after it: a new entry, this one left as
        it is (a decision in flight may still use it). Only ``more`` is decoded and folded."""
        self._settle()
        return Loaded([*self.stored, *more], self.nbytes + stream_bytes(more), _base=self)


def appended_events(appends: Sequence[StreamAppend], result: AppendResult, metadata: Metadata,
                    recorded_at: datetime) -> dict[str, list[StoredEvent]]:
    """The events of a committed append as a read would return them, per stream (``{}`` if
    the result does not list one position per event). The store answers the positions in the
    order it writes the events: streams in lock order (``flatten``), each in its order."""
    ordered = [(a, i, new) for a in flatten(appends) for i, new in enumerate(a.events, start=1)]
    if len(ordered) != len(result.positions):
        return {}
    meta = metadata.to_json()
    out: dict[str, list[StoredEvent]] = {}
    for (append, i, new), position in zip(ordered, result.positions, strict=True):
        out.setdefault(append.stream_id, []).append(StoredEvent(
            position=position, tx_id=result.tx_id, event_id=new.event_id,
            stream_id=append.stream_id, version=append.expected_version + i, type=new.type,
            schema_version=new.schema_version, data=new.data_json(), metadata=meta,
            recorded_at=recorded_at))
    return out


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
        self._stale: set[str] = set()  # cached streams another writer has moved on
        self.fresh = FreshReads(self)

    def _remember(self, stream_id: str, events: list[StoredEvent]) -> Loaded:
        return self._keep(stream_id, Loaded(events, stream_bytes(events)))

    def _keep(self, stream_id: str, loaded: Loaded) -> Loaded:
        self.forget(stream_id)
        if not loaded.stored or loaded.nbytes > self.max_bytes:
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
        if cached is None or stream_id in self._stale:
            return await self.refresh(stream_id)
        self._streams.move_to_end(stream_id)
        return cached

    async def refresh(self, stream_id: str) -> Loaded:
        """The stream as the database holds it now: a cached entry goes on with the events
        after its version (streams only grow, so that is what a full read gives), an
        uncached stream is read whole."""
        cached = self._streams.get(stream_id)
        if cached is None:
            return self._remember(stream_id, await self.store.read_stream(stream_id))
        self._stale.discard(stream_id)  # before the read: a conflict meanwhile marks it again
        more = await self.store.read_stream(stream_id, cached.version)
        loaded = cached.extended(more) if more else cached
        current = self._streams.get(stream_id)
        if current is None or current.version < loaded.version:
            self._keep(stream_id, loaded)
        elif current is loaded:
            self._streams.move_to_end(stream_id)
        return loaded

    def stale(self, stream_id: str) -> None:
        """Another writer has moved the stream on (an append found it past the cached
        version): the next load reads what follows the cached entry."""
        if stream_id in self._streams:
            self._stale.add(stream_id)

    def forget(self, stream_id: str) -> None:
        self._stale.discard(stream_id)
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
            self.stale(exc.stream_id)
            raise
        self.appended(appends, result, metadata)
        return result

    def appended(self, appends: Sequence[StreamAppend], result: AppendResult,
                 metadata: Metadata) -> None:
        """Bring the cache past an append that committed (through this store or in a
        transaction of the caller's): each stream written is extended with its new events if
        it was cached at the version the append expected (or created by it); any other entry
        of a stream written is dropped, to be read afresh."""
        written = appended_events(appends, result, metadata, datetime.now(UTC))
        for append in appends:
            if not append.events:
                continue
            more = written.get(append.stream_id)
            cached = self._streams.get(append.stream_id)
            if more is None:
                self.forget(append.stream_id)
            elif cached is not None and cached.version >= more[-1].version:
                continue  # read at or past this append already (by a command racing it)
            elif append.expected_version == 0:  # created by this append: all of it is here
                self._keep(append.stream_id, Loaded(more, stream_bytes(more)))
            elif cached is None:
                continue  # not kept before: its earlier events are not known here
            elif cached.version == append.expected_version:
                self._keep(append.stream_id, cached.extended(more))
            else:
                self.forget(append.stream_id)  # behind what the append found: stale

    async def read_all(self, after: Checkpoint, limit: int) -> list[StoredEvent]:
        return await self.store.read_all(after, limit)

    def committed(self, appends: Sequence[StreamAppend] | None = None) -> None:
        committed = getattr(self.store, "committed", None)
        if committed is not None:
            committed(appends)


class FreshReads(EventStore):
    """The same store, reading every stream from the database (and refreshing the cache):
    what follows the cached entry, or the whole stream if none."""

    def __init__(self, cache: CachedEventStore) -> None:
        self.cache = cache

    async def load(self, stream_id: str) -> Loaded:
        return await self.cache.refresh(stream_id)

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[StoredEvent]:
        loaded = await self.load(stream_id)
        return [e for e in loaded.stored if e.version > after_version]

    async def append(self, appends: Sequence[StreamAppend], metadata: Metadata) -> AppendResult:
        return await self.cache.append(appends, metadata)

    async def read_all(self, after: Checkpoint, limit: int) -> list[StoredEvent]:
        return await self.cache.store.read_all(after, limit)
