"""The Postgres adapter of the event store.

``append`` is one statement (:mod:`events.append_statements`; in autocommit mode one
round trip, one transaction); the wake-up NOTIFY follows after commit, coalesced
(:mod:`events.notifier`). ``read_all`` follows the global order ``(tx_id, position)``
and stops below the oldest transaction still running, so it never passes an event that a
concurrent transaction will commit before it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import psycopg
from psycopg.rows import tuple_row

from events.append_statements import (
    REFUSED_STREAM,
    Statement,
    array_form_statement,
    refusal_order,
    statement_for,
)
from events.envelope import Checkpoint, Metadata, StoredEvent
from events.errors import ConcurrencyConflict
from events.notifier import CommitNotifier
from events.store import AppendResult, EventStore, StreamAppend
from projector.partitioning import partition_expression
from services.db import Database

CONFLICT_SQLSTATE = "TK001"

_COLUMNS = (
    "position, tx_id::text::bigint AS tx_id, event_id, stream_id, version, type,"
    " schema_version, data, metadata, recorded_at"
)

_READ_ALL = (
    f"SELECT {_COLUMNS} FROM events"
    " WHERE (tx_id, position) > (%s::text::xid8, %s)"
    "   AND tx_id < pg_snapshot_xmin(pg_current_snapshot())"
    # Qualified: a bare ``tx_id`` would name the bigint output column, and the sort would
    # read every remaining event instead of walking the (tx_id, position) index.
    " ORDER BY events.tx_id, events.position LIMIT %s"
)

_READ_STREAM = (
    f"SELECT {_COLUMNS} FROM events WHERE stream_id = %s AND version > %s ORDER BY version"
)


def row_to_event(row: dict) -> StoredEvent:
    return StoredEvent(
        position=row["position"],
        tx_id=row["tx_id"],
        event_id=row["event_id"],
        stream_id=row["stream_id"],
        version=row["version"],
        type=row["type"],
        schema_version=row["schema_version"],
        data=row["data"],
        metadata=row["metadata"],
        recorded_at=row["recorded_at"],
    )


async def refusal(conn: psycopg.AsyncConnection,
                  appends: Sequence[StreamAppend]) -> ConcurrencyConflict:
    """The conflict of a refused append, naming the first stream that is not at its expected
    version (versions only move on, so the stream that refused it still is not; if none is,
    as when a concurrent creation of a new stream rolled back, the stream written)."""
    streams, expected = refusal_order(appends)
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute(REFUSED_STREAM, (streams, expected))
    row = await cur.fetchone()
    stream = row[0] if row else streams[-1]
    return ConcurrencyConflict(stream, expected[streams.index(stream)])


async def append_on(conn: psycopg.AsyncConnection, appends: Sequence[StreamAppend],
                    metadata: Metadata, statement: Statement = statement_for) -> AppendResult:
    """Append on a given connection (inside the caller's transaction if it has one)."""
    query, params = statement(appends, metadata)
    cur = conn.cursor(row_factory=tuple_row)  # (position, tx_id): no dict per row
    try:
        await cur.execute(query, params)
    except psycopg.Error as exc:
        if exc.sqlstate == CONFLICT_SQLSTATE:
            stream = exc.diag.message_detail or "?"
            expected = next((a.expected_version for a in appends if a.stream_id == stream), -1)
            raise ConcurrencyConflict(stream, expected) from None
        raise
    rows = await cur.fetchall()
    if not rows:
        if any(a.events for a in appends):  # refused: the one-event statement wrote nothing
            raise await refusal(conn, appends)
        return AppendResult(positions=(), tx_id=0)
    return AppendResult(positions=tuple(r[0] for r in rows), tx_id=rows[0][1])


class PostgresEventStore(EventStore):
    """``notifier`` (optional) is poked after each committed append to wake readers."""

    statement: Statement = staticmethod(statement_for)  # which SQL appends (per shape)

    def __init__(self, db: Database, notifier: CommitNotifier | None = None) -> None:
        self.db = db
        self.notifier = notifier

    def committed(self, appends: Sequence[StreamAppend] | None = None) -> None:
        """Tell readers that an append committed (also after ``append_on`` in a caller's
        transaction, once that transaction has committed); ``appends`` says which talks it
        wrote (the wake-up of a partitioned projector names their partitions)."""
        if self.notifier is not None:
            self.notifier.poke(None if appends is None else {
                new.event.chat_id for a in appends for new in a.events})

    async def append(self, appends: Sequence[StreamAppend], metadata: Metadata) -> AppendResult:
        async with self.db.statement("append_events") as conn:
            result = await append_on(conn, appends, metadata, self.statement)
        self.committed(appends)
        return result

    async def read_stream(self, stream_id: str, after_version: int = 0) -> list[StoredEvent]:
        async with self.db.statement("read_stream") as conn:
            cur = await conn.execute(_READ_STREAM, (stream_id, after_version))
            return [row_to_event(r) for r in await cur.fetchall()]

    async def read_all(self, after: Checkpoint, limit: int) -> list[StoredEvent]:
        async with self.db.statement("read_all_events") as conn:
            return await read_all_on(conn, after, limit)

    async def stream_version(self, stream_id: str) -> int:
        async with self.db.statement("stream_version") as conn:
            cur = await conn.execute("SELECT version FROM streams WHERE stream_id = %s", (stream_id,))
            row = await cur.fetchone()
            return row["version"] if row else 0


async def read_all_on(conn: psycopg.AsyncConnection, after: Checkpoint, limit: int) -> list[StoredEvent]:
    cur = await conn.execute(_READ_ALL, (str(after.tx_id), after.position, limit))
    return [row_to_event(r) for r in await cur.fetchall()]


@functools.cache  # the text for each number of partitions, built once
def _read_partition(partitions: int) -> str:
    """``_READ_ALL`` for one partition's talks, on the partition's index (the projector
    creates it: projector/partitioning.py)."""
    return (f"SELECT {_COLUMNS} FROM events"
            f" WHERE {partition_expression(partitions)} = %s"
            "   AND (tx_id, position) > (%s::text::xid8, %s)"
            "   AND tx_id < pg_snapshot_xmin(pg_current_snapshot())"
            " ORDER BY events.tx_id, events.position LIMIT %s")


async def read_partition_on(conn: psycopg.AsyncConnection, after: Checkpoint, limit: int,
                            partition: int, partitions: int) -> list[StoredEvent]:
    """The next events of talks in ``partition`` (of ``partitions``) after ``after``, in the
    global order and behind the same barrier as :func:`read_all_on`."""
    cur = await conn.execute(_read_partition(partitions),
                             (partition, str(after.tx_id), after.position, limit))
    return [row_to_event(r) for r in await cur.fetchall()]


class ArrayFormEventStore(PostgresEventStore):
    """The store as it appended before migration 0008, for a database whose schema stops
    earlier (the tests of older migrations; the before/after comparison in bench.append)."""

    statement = staticmethod(array_form_statement)
