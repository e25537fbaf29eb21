"""Replay: project the history into the read tables of one schema, in big chunks.

The live projector applies each event with its own statements (``projector/read_model.py``),
a few hundred events per transaction. A replay reads a chunk of thousands of events in the
global order, decodes them through the upcasters, folds them in memory
(:mod:`projector.replay_fold`), loads only the rows the chunk changes but did not create,
and writes every touched row once with ``COPY``; the chunk and the replay's own checkpoint
commit together, so a replay that stops resumes where it was.

A replay never passes the live projector: it reads up to the live checkpoint
(``projector_checkpoints`` row ``read_model``) as the reading statement sees it. Every event
up to that checkpoint is committed for good (the live projector read it under the rule of
``events.postgres_store.read_all_on``), so the two can meet at exactly the same place:
a rebuild switches the query API over there, and verify compares there.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from uuid import UUID

import orjson
import psycopg
from psycopg.adapt import PyFormat
from psycopg.rows import tuple_row
from psycopg.types.json import set_json_loads

from events.catalogue import Event
from events.envelope import START, Checkpoint
from events.upcasting import UPCASTERS, Upcasters
from projector.checkpoints import load_checkpoint, save_checkpoint
from projector.read_markers import move_markers
from projector.read_schema import CHATS, LIVE_CHECKPOINT, MESSAGES, PARTICIPANTS, Table
from projector.replay_fold import ChunkRows, Row, fold, touched
from services.db import Database

CHUNK_SIZE = 10_000

_LIVE = ("(SELECT last_tx, last_pos FROM projector_checkpoints"
         f" WHERE name = '{LIVE_CHECKPOINT}')")

_READ_CHUNK = (
    "SELECT tx_id::text::bigint, position, type, schema_version, data::text,"
    " metadata->>'customer_id' FROM events"
    " WHERE (tx_id, position) > (%s::text::xid8, %s)"
    f"   AND (tx_id, position) <= {_LIVE}"
    " ORDER BY events.tx_id, events.position LIMIT %s"  # the columns, not the bigint outputs
)

_COUNT_TO_LIVE = (
    "SELECT count(*) AS n FROM events"
    " WHERE (tx_id, position) > (%s::text::xid8, %s)"
    f"   AND (tx_id, position) <= {_LIVE}"
)

Progress = Callable[[int], None]
"""Told how many events each chunk held."""

GC_THRESHOLDS = (50_000, 20, 100)


@contextlib.contextmanager
def fewer_gc_passes() -> Iterator[None]:
    """A chunk allocates hundreds of thousands of short-lived objects (models, rows) that
    reference counting frees. With the default thresholds the cyclic collector would run
    every 700 allocations and, every hundred runs, walk every live object: nearly half the
    CPU of a replay. Young collections every 50,000 allocations instead, while it lasts."""
    saved = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*saved)


class Decoder:
    """Stored payloads as current catalogue models, as ``StoredEvent.decode`` makes them:
    a payload at its type's current version is validated straight from its JSON text; an
    older one is parsed and goes through the upcasters first."""

    def __init__(self, upcasters: Upcasters) -> None:
        self.upcasters = upcasters
        self._current: dict[str, tuple[int, Callable[[str], Event]]] = {}

    def __call__(self, type_: str, schema_version: int, data: str) -> Event:
        current = self._current.get(type_)
        if current is None:
            cls = self.upcasters.event_class(type_)
            current = self._current[type_] = (cls.schema_version,
                                              cls.__pydantic_validator__.validate_json)
        if schema_version == current[0]:
            return current[1](data)
        cls = self.upcasters.event_class(type_)
        return cls.model_validate(self.upcasters.upcast(type_, schema_version, orjson.loads(data)))


@dataclass(frozen=True, slots=True)
class Chunk:
    events: list[tuple[Event, UUID]]
    last: Checkpoint


class Replay:
    """The read tables of ``schema`` and their checkpoint ``checkpoint_name``."""

    def __init__(self, db: Database, schema: str, checkpoint_name: str, *,
                 upcasters: Upcasters = UPCASTERS, chunk_size: int = CHUNK_SIZE) -> None:
        self.db = db
        self.schema = schema
        self.checkpoint_name = checkpoint_name
        self.upcasters = upcasters
        self.chunk_size = chunk_size
        self.checkpoint = START
        self._types: dict[str, list[str]] = {}

    async def load_checkpoint(self) -> Checkpoint:
        async with self.db.statement("replay_load_checkpoint") as conn:
            self.checkpoint = await load_checkpoint(conn, self.checkpoint_name)
        return self.checkpoint

    async def remaining(self) -> int:
        """Events between this replay's checkpoint and the live one."""
        async with self.db.statement("replay_count_remaining") as conn:
            cur = await conn.execute(_COUNT_TO_LIVE, (str(self.checkpoint.tx_id),
                                                      self.checkpoint.position))
            return (await cur.fetchone())["n"]

    async def run(self, progress: Progress) -> int:
        """Chunk after chunk, each in its own transaction, until a chunk comes back short
        of ``chunk_size`` (the replay is then within a chunk of the live checkpoint).
        Returns how many events it applied.

        Three chunks are in the works at once: chunk k+2 is read (and decoded) while chunk
        k+1 is folded while chunk k is written. Chunk k+1 takes the rows chunk k touched
        from chunk k's fold (not committed yet) and the others from the tables (committed
        by chunk k-1 or earlier, and untouched by chunk k); its transaction starts once
        chunk k's has committed."""
        with fewer_gc_passes():
            return await self._run(progress)

    async def _run(self, progress: Progress) -> int:
        applied = 0
        reading: asyncio.Task[Chunk] | None = None
        writing: asyncio.Task[None] | None = None
        async with self.db.statement("replay_read_events") as reader, \
                self.db.statement("replay_load_rows") as loader:
            try:
                reading = asyncio.create_task(self._read(reader, self.checkpoint))
                in_flight = ChunkRows()  # the rows of the chunk being written
                while True:
                    chunk = await reading
                    reading = None
                    if not chunk.events:
                        break
                    full = len(chunk.events) == self.chunk_size
                    if full:
                        reading = asyncio.create_task(self._read(reader, chunk.last))
                    need = touched(event for event, _ in chunk.events)
                    chats, old_chats = await self._load(loader, CHATS, need.chats_to_load,
                                                        in_flight.chats)
                    messages, old_messages = await self._load(
                        loader, MESSAGES, need.messages_to_load, in_flight.messages)
                    rows = fold(chunk.events, chats, messages)
                    if writing is not None:
                        await writing  # chunk k committed: chunk k+1 may start
                    writing = asyncio.create_task(self._write_chunk(
                        chunk, rows, {CHATS: old_chats, MESSAGES: old_messages,
                                      PARTICIPANTS: need.participants_to_delete}, progress))
                    in_flight = rows
                    applied += len(chunk.events)
                    if not full:
                        break
                if writing is not None:
                    await writing
                    writing = None
            finally:
                for task in (reading, writing):
                    if task is not None and not task.done():
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await task
        return applied

    async def catch_up_on(self, conn: psycopg.AsyncConnection, progress: Progress) -> int:
        """Up to the live checkpoint as ``conn``'s transaction sees it, inside that
        transaction (the caller holds the live checkpoint still, or reads a snapshot)."""
        total = 0
        with fewer_gc_passes():
            while (chunk := await self._read(conn, self.checkpoint)).events:
                await self._apply(conn, chunk)
                total += len(chunk.events)
                progress(len(chunk.events))
        return total

    # --- one chunk -------------------------------------------------------------------------

    async def _read(self, conn: psycopg.AsyncConnection, after: Checkpoint) -> Chunk:
        cur = conn.cursor(row_factory=tuple_row)
        await cur.execute(_READ_CHUNK, (str(after.tx_id), after.position, self.chunk_size))
        rows = await cur.fetchall()
        if not rows:
            return Chunk([], after)
        customers: dict[str, UUID] = {}
        decode = Decoder(self.upcasters)
        events = []
        for _tx, _pos, type_, schema_version, data, customer in rows:
            customer_id = customers.get(customer)
            if customer_id is None:
                customer_id = customers[customer] = UUID(customer)
            events.append((decode(type_, schema_version, data), customer_id))
        return Chunk(events, Checkpoint(rows[-1][0], rows[-1][1]))

    async def _apply(self, conn: psycopg.AsyncConnection, chunk: Chunk) -> None:
        """One chunk on one connection, in the caller's transaction."""
        need = touched(event for event, _ in chunk.events)
        chats = await self._take(conn, CHATS, need.chats_to_load)
        messages = await self._take(conn, MESSAGES, need.messages_to_load)
        await self._delete(conn, PARTICIPANTS, need.participants_to_delete)
        await self._write_rows(conn, fold(chunk.events, chats, messages))
        await save_checkpoint(conn, self.checkpoint_name, chunk.last)
        self.checkpoint = chunk.last

    async def _write_chunk(self, chunk: Chunk, rows: ChunkRows,
                           old: dict[Table, list[UUID]], progress: Progress) -> None:
        """A folded chunk, in its own transaction: the old versions of its rows go, the
        new ones come, with the checkpoint."""
        async with self.db.transaction("replay_chunk") as conn:
            for table, ids in old.items():
                await self._delete(conn, table, ids)
            await self._write_rows(conn, rows)
            await save_checkpoint(conn, self.checkpoint_name, chunk.last)
        self.checkpoint = chunk.last
        progress(len(chunk.events))

    async def _load(self, conn: psycopg.AsyncConnection, table: Table, ids: list[UUID],
                    in_flight: dict[int, Row | None]) -> tuple[dict[int, Row], list[UUID]]:
        """The rows with these ids as they stand, by ``id.int``: from the chunk in flight
        where it touched them, from the table otherwise; and the ids of those that exist
        (to delete before they are written back)."""
        rows: dict[int, Row] = {}
        existing: list[UUID] = []
        from_table: list[UUID] = []
        for row_id in ids:
            key = row_id.int
            if key in in_flight:
                if (row := in_flight[key]) is not None:
                    rows[key] = row
                    existing.append(row_id)
            else:
                from_table.append(row_id)
        if from_table:
            cur = conn.cursor()
            set_json_loads(orjson.loads, cur)
            await cur.execute(f"SELECT {', '.join(table.columns)} FROM {self.schema}.{table.name}"
                              " WHERE id = ANY(%s)", (from_table,))
            for row in await cur.fetchall():
                rows[row["id"].int] = row
                existing.append(row["id"])
        return rows, existing

    async def _take(self, conn: psycopg.AsyncConnection, table: Table,
                    ids: list[UUID]) -> dict[int, Row]:
        """Remove these rows and return them (by ``id.int``): the chunk writes each of them
        back as it leaves it."""
        if not ids:
            return {}
        cur = conn.cursor()
        set_json_loads(orjson.loads, cur)
        await cur.execute(f"DELETE FROM {self.schema}.{table.name} WHERE id = ANY(%s)"
                          f" RETURNING {', '.join(table.columns)}", (ids,))
        return {row["id"].int: row for row in await cur.fetchall()}

    async def _delete(self, conn: psycopg.AsyncConnection, table: Table, ids: list[UUID]) -> None:
        if ids:
            await conn.execute(f"DELETE FROM {self.schema}.{table.name} WHERE id = ANY(%s)",
                               (ids,))

    async def _write_rows(self, conn: psycopg.AsyncConnection, rows: ChunkRows) -> None:
        for table, new in ((CHATS, rows.chats), (PARTICIPANTS, rows.participants),
                           (MESSAGES, rows.messages)):
            values = [row for row in new.values() if row is not None]
            if values:
                await self._copy(conn, table, values)
        await move_markers(conn, rows.moves, prefix=f"{self.schema}.")

    async def _copy(self, conn: psycopg.AsyncConnection, table: Table, rows: list[Row]) -> None:
        """Binary ``COPY``. ``uuid`` and ``jsonb`` values are sent in their wire form (16
        bytes; version 1 and the JSON text) through the C ``bytea`` dumper: psycopg's own
        dumpers for those types are Python code, run for every value."""
        types = await self._column_types(conn, table)
        uuid_at = [i for i, t in enumerate(types) if t == "uuid"]
        json_at = [i for i, t in enumerate(types) if t == "jsonb"]
        wire = ["bytea" if t in ("uuid", "jsonb") else t for t in types]
        columns = table.columns
        dumps = orjson.dumps
        statement = (f"COPY {self.schema}.{table.name} ({', '.join(columns)})"
                     " FROM STDIN (FORMAT BINARY)")
        cur = conn.cursor()
        # By oid, bytea maps to the dumper of ``psycopg.Binary`` (Python); by type, bytes
        # map to the C one: make the latter the one for bytea on this cursor.
        cur.adapters.register_dumper(bytes, psycopg.adapters.get_dumper(bytes, PyFormat.BINARY))
        async with cur.copy(statement) as copy:
            copy.set_types(wire)
            for row in rows:
                values = [row[c] for c in columns]
                for i in uuid_at:
                    if (value := values[i]) is not None:
                        values[i] = value.int.to_bytes(16, "big")  # UUID.bytes, inlined
                for i in json_at:
                    if (value := values[i]) is not None:
                        values[i] = b"\x01" + dumps(value)
                await copy.write_row(values)

    async def _column_types(self, conn: psycopg.AsyncConnection, table: Table) -> list[str]:
        types = self._types.get(table.name)
        if types is None:
            cur = await conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod) AS type FROM pg_attribute"
                " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                (f"{self.schema}.{table.name}",))
            found = {row["attname"]: row["type"] for row in await cur.fetchall()}
            types = self._types[table.name] = [found[c] for c in table.columns]
        return types
