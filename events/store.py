"""The event store interface: what every adapter (Postgres, in-memory) provides."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field

from events.envelope import Checkpoint, Metadata, NewEvent, StoredEvent


@dataclass(frozen=True, slots=True)
class StreamAppend:
    """Events for one stream, appended only if the stream is at ``expected_version``
    (0 means: the stream must not exist yet). With no events it is a check that holds the
    stream at that version until the append commits."""

    stream_id: str
    expected_version: int
    events: Sequence[NewEvent] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where the appended events landed in the global order, in the order given."""

    positions: tuple[int, ...]
    tx_id: int

    @property
    def last_position(self) -> int:
        return self.positions[-1] if self.positions else 0

    @property
    def checkpoint(self) -> Checkpoint:
        return Checkpoint(self.tx_id, self.last_position)


class EventStore(abc.ABC):
    @abc.abstractmethod
    async def append(self, appends: Sequence[StreamAppend], metadata: Metadata) -> AppendResult:
        """Append atomically to every stream, or raise ``ConcurrencyConflict`` naming the
        first stream that was not at its expected version (nothing is written then)."""

    @abc.abstractmethod
    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[StoredEvent]:
        """The stream's events after ``after_version``, oldest first."""

    @abc.abstractmethod
    async def read_all(self, after: Checkpoint, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` events after ``after`` in the global order, never passing an event
        that a transaction still in flight may commit before it."""


def flatten(appends: Sequence[StreamAppend]) -> list[StreamAppend]:
    """Appends in a stable lock order (by stream id) so that writers never deadlock."""
    ids = [a.stream_id for a in appends]
    if len(set(ids)) != len(ids):
        raise ValueError(f"a stream appears twice in one append: {ids}")
    for a in appends:
        for ev in a.events:
            if ev.stream_id != a.stream_id:
                raise ValueError(f"event for {ev.stream_id} listed under {a.stream_id}")
    return sorted(appends, key=lambda a: a.stream_id)
