"""Replay: project the history into the read tables of one schema, in big chunks.

The live projector applies each event with its own statements (``projector/read_model.py``),
a few hundred events per transaction. A replay reads a chunk of thousands of events in the
global order, decodes them through the upcasters, folds them in memory
(:mod:`projector.replay_fold`), loads only the rows the chunk changes but did not create,
and writes every touched row once with ``COPY``; the chunk and the replay's own checkpoint
commit together, so a replay that stops resumes where it was.

A replay never passes the live projector: it reads up to the live checkpoints (the rows
``read_model`` of ``projector_checkpoints``) as the reading statement sees them (its
:class:`Bound`). With the projection in N partitions (``TALK_PROJECTOR_PARTITIONS``) each
partition has its own checkpoint cp_p, and the read tables hold, for each p, the events of
p's talks up to cp_p: an event is replayed up to the checkpoint of its partition. Every
event up to a live checkpoint is committed for good (the live projector read it under the
rule of ``events.postgres_store.read_all_on``), so the two can meet at exactly the same
place: a rebuild switches the query API over there, and verify compares there.

A replay may take only some of the talks (:class:`Slice`: worker w of K takes those with
``talk_partition(chat_id, K) = w``; the read rows are per talk, so K replays into one fresh
schema side by side make the same rows as one). Its checkpoint is one row per group
``talk_partition(chat_id, K * N)``: a group lies within one worker and one live partition,
whose checkpoint bounds it.
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
from projector.checkpoints import stored_partitions
from projector.partitioning import partition_expression
from projector.read_markers import move_markers
from projector.read_schema import CHATS, LIVE_CHECKPOINT, MESSAGES, PARTICIPANTS, Table
from projector.replay_fold import ChunkRows, Row, fold, touched
from services.db import Database

CHUNK_SIZE = 10_000

_LIVE_CHECKPOINTS = (
    "SELECT partition, partitions, last_tx::text::bigint AS tx, last_pos FROM"
    " projector_checkpoints WHERE name = %s ORDER BY partition")

# The last event committed for good: transactions older than the oldest one still open.
_HEAD = (
    "SELECT tx_id::text::bigint AS tx, position FROM events"
    " WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot())"
    " ORDER BY events.tx_id DESC, events.position DESC LIMIT 1")

_SAVE_CHECKPOINTS = (
    "UPDATE projector_checkpoints c SET last_tx = u.tx::text::xid8, last_pos = u.pos,"
    " updated_at = now() FROM unnest(%s::int[], %s::bigint[], %s::bigint[]) AS u(p, tx, pos)"
    " WHERE c.name = %s AND c.partition = u.p")

_COLUMNS = ("e.tx_id::text::bigint, e.position, e.type, e.schema_version, e.data::text,"
            " e.metadata->>'customer_id'")

Progress = Callable[[int], None]
"""Told how many events each chunk held."""


class LayoutChanged(RuntimeError):
    """The live checkpoints are not laid out as the replay was started for."""


@dataclass(frozen=True)
class Bound:
    """Where a replay stops, per live partition (a list of ``partitions`` places):
    ``live``, the live projector's checkpoints, laid out in ``partitions`` rows (a
    replay never passes them); ``settled``, one place for every talk, whatever the live
    layout: the furthest up to which every event is projected in its partition (where a
    rebuild lays the checkpoints out anew, :func:`settled_checkpoint`); ``fixed``, the
    places given."""

    kind: str = "live"
    partitions: int = 1
    fixed: tuple[Checkpoint, ...] = ()

    @classmethod
    def at(cls, *places: Checkpoint) -> Bound:
        return cls("fixed", len(places), tuple(places))

    @classmethod
    def settled(cls) -> Bound:
        return cls("settled", 1)

    async def read(self, conn: psycopg.AsyncConnection) -> list[Checkpoint]:
        if self.kind == "fixed":
            return list(self.fixed)
        if self.kind == "settled":
            return [await settled_checkpoint(conn)]
        cur = await conn.execute(_LIVE_CHECKPOINTS, (LIVE_CHECKPOINT,))
        rows = await cur.fetchall()
        if not rows and self.partitions == 1:
            return [START]  # no projector has run yet
        if ([row["partition"] for row in rows] != list(range(self.partitions))
                or any(row["partitions"] != self.partitions for row in rows)):
            raise LayoutChanged(
                f"the live checkpoints are laid out in {len(rows)} rows, not the"
                f" {self.partitions} partitions this run started with (a projector with"
                " another TALK_PROJECTOR_PARTITIONS?)")
        return [Checkpoint(row["tx"], row["last_pos"]) for row in rows]


async def settled_checkpoint(conn: psycopg.AsyncConnection) -> Checkpoint:
    """The furthest place up to which every event has been projected, whatever the layout
    of the live checkpoints: just before the first event any partition has still to apply
    (its first after its checkpoint), or the last event committed for good (the rule of
    ``events.postgres_store.read_all_on``: no transaction still open may add one before it)
    if none has. Nothing after it is projected everywhere; nothing before it is left out
    (an idle partition's checkpoint may lie far behind: that holds nothing back)."""
    partitions = await live_layout(conn)
    cur = await conn.execute("SELECT count(*) AS n FROM projector_checkpoints WHERE name = %s",
                             (LIVE_CHECKPOINT,))
    if (await cur.fetchone())["n"] == 0:
        return START  # no projector has run yet
    cur = await conn.execute(_HEAD)
    head = await cur.fetchone()
    if head is None:
        return START
    mine = (f"{partition_expression(partitions, 'e')} = c.partition" if partitions > 1
            else "TRUE")
    cur = await conn.execute(
        "SELECT n.tx, n.position FROM projector_checkpoints c CROSS JOIN LATERAL"
        " (SELECT e.tx_id::text::bigint AS tx, e.position FROM events e"
        f"   WHERE {mine} AND (e.tx_id, e.position) > (c.last_tx, c.last_pos)"
        "      AND (e.tx_id, e.position) <= (%s::text::xid8, %s)"
        "   ORDER BY e.tx_id, e.position LIMIT 1) n"
        " WHERE c.name = %s ORDER BY n.tx, n.position LIMIT 1",
        (str(head["tx"]), head["position"], LIVE_CHECKPOINT))
    first = await cur.fetchone()
    if first is None:
        return Checkpoint(head["tx"], head["position"])
    return Checkpoint(first["tx"], first["position"] - 1)  # every event before it


async def live_layout(conn: psycopg.AsyncConnection) -> int:
    """How many partitions the live checkpoints are laid out in (1 with no row yet)."""
    return (await stored_partitions(conn, LIVE_CHECKPOINT))[0]


@dataclass(frozen=True)
class Slice:
    """The talks of one replay: worker ``worker`` of ``workers`` takes those with
    ``talk_partition(chat_id, workers) = worker``. Its checkpoint is kept per group
    ``talk_partition(chat_id, groups)``, ``groups = workers * partitions``: a group lies
    within one worker (g mod workers) and one live partition (g mod partitions)."""

    worker: int = 0
    workers: int = 1
    partitions: int = 1  # of the Bound

    @property
    def groups(self) -> int:
        return self.workers * self.partitions

    @property
    def own_groups(self) -> range:
        return range(self.worker, self.groups, self.workers)

    @classmethod
    def all(cls, workers: int, partitions: int) -> list[Slice]:
        return [cls(w, workers, partitions) for w in range(workers)]


def _mine(slice_: Slice, alias: str) -> str | None:
    """Whether an event is the slice's to replay now (None: every event in range is): of its
    worker's talks and, when it keeps several groups, after its group's checkpoint and up to
    its group's bound."""
    terms = []
    if slice_.workers > 1:
        terms.append(f"{partition_expression(slice_.workers, alias)} = {slice_.worker}")
    if len(slice_.own_groups) > 1:
        g = f"{partition_expression(slice_.groups, alias)} + 1"
        place = f"({alias}.tx_id, {alias}.position)"
        terms.append(f"{place} > ((%(c_tx)s::bigint[])[{g}]::text::xid8,"
                     f" (%(c_pos)s::bigint[])[{g}])")
        terms.append(f"{place} <= ((%(l_tx)s::bigint[])[{g}]::text::xid8,"
                     f" (%(l_pos)s::bigint[])[{g}])")
    return " AND ".join(terms) or None


_RANGE = ("(e.tx_id, e.position) > (%(lo_tx)s::text::xid8, %(lo_pos)s)"
          " AND (e.tx_id, e.position) <= (%(hi_tx)s::text::xid8, %(hi_pos)s)")


def _read_statement(slice_: Slice) -> str:
    """The next events in the global order between the lowest checkpoint and the highest
    bound of the slice's groups (``%(scan)s`` of them, on the ``(tx_id, position)`` index),
    the payload only of those that are the slice's (:func:`_mine`; NULL for the others: a
    stored payload never is).

    The filter is applied above the scan's LIMIT, not in its WHERE: the planner cannot
    tell how many events an expression like ``talk_partition(...) = w`` keeps, guesses very
    few, and would then read and sort the whole rest of the table for every chunk."""
    mine = _mine(slice_, "s")
    if mine is None:
        return (f"SELECT {_COLUMNS} FROM events e WHERE {_RANGE}"
                # the columns, not the bigint outputs: the index's order
                " ORDER BY e.tx_id, e.position LIMIT %(scan)s")
    return (
        "SELECT s.tx_id::text::bigint, s.position, s.type, s.schema_version,"
        f" CASE WHEN {mine} THEN s.data::text END, s.metadata->>'customer_id'"
        " FROM (SELECT e.tx_id, e.position, e.type, e.schema_version, e.data, e.metadata"
        f"        FROM events e WHERE {_RANGE}"
        "        ORDER BY e.tx_id, e.position LIMIT %(scan)s) s"
        " ORDER BY s.tx_id, s.position")  # the scan's order: no sort


def _count_statement(slice_: Slice) -> str:
    mine = _mine(slice_, "e")
    return (f"SELECT count(*) AS n FROM events e WHERE {_RANGE}"
            + (f" AND {mine}" if mine else ""))


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
    last: dict[int, Checkpoint]  # the checkpoint of each group after the chunk
    full: bool  # as many events scanned as asked for: more may follow


class Replay:
    """The read tables of ``schema`` and their checkpoint ``checkpoint_name``, for the talks
    of ``slice_``, up to ``bound``."""

    def __init__(self, db: Database, schema: str, checkpoint_name: str, *,
                 upcasters: Upcasters = UPCASTERS, chunk_size: int = CHUNK_SIZE,
                 slice_: Slice = Slice(), bound: Bound | None = None) -> None:
        self.db = db
        self.schema = schema
        self.checkpoint_name = checkpoint_name
        self.upcasters = upcasters
        self.chunk_size = chunk_size
        self.slice = slice_
        self.bound = bound or Bound("live", slice_.partitions)
        if self.bound.partitions != slice_.partitions:
            raise ValueError("a slice's groups must lie within the bound's partitions")
        self.checkpoints = dict.fromkeys(slice_.own_groups, START)
        self._read_sql = _read_statement(slice_)
        self._count_sql = _count_statement(slice_)
        # events scanned per chunk: about chunk_size of them the slice's
        self._scan = chunk_size * slice_.workers
        self._types: dict[str, list[str]] = {}

    @property
    def checkpoint(self) -> Checkpoint:
        """The furthest place any of its groups reached (the place, with one group)."""
        return max(self.checkpoints.values())

    async def load_checkpoint(self) -> Checkpoint:
        async with self.db.statement("replay_load_checkpoint") as conn:
            cur = await conn.execute(
                "SELECT partition, last_tx::text::bigint AS tx, last_pos"
                " FROM projector_checkpoints WHERE name = %s AND partitions = %s",
                (self.checkpoint_name, self.slice.groups))
            stored = {row["partition"]: Checkpoint(row["tx"], row["last_pos"])
                      for row in await cur.fetchall()}
        self.checkpoints = {g: stored.get(g, START) for g in self.slice.own_groups}
        return self.checkpoint

    async def at_bound(self, conn: psycopg.AsyncConnection,
                       bounds: list[Checkpoint] | None = None) -> bool:
        """Whether every group stands exactly at its bound."""
        bounds = bounds if bounds is not None else await self.bound.read(conn)
        return all(c == bounds[g % len(bounds)] for g, c in self.checkpoints.items())

    def _params(self, after: dict[int, Checkpoint], bounds: list[Checkpoint]) -> dict | None:
        """The read's parameters, or None when every group is at its bound already."""
        limits = {g: bounds[g % len(bounds)] for g in after}
        open_groups = [g for g in after if after[g] < limits[g]]
        if not open_groups:
            return None
        lo = min(after[g] for g in open_groups)
        hi = max(limits[g] for g in open_groups)
        params = {"lo_tx": str(lo.tx_id), "lo_pos": lo.position, "hi_tx": str(hi.tx_id),
                  "hi_pos": hi.position, "scan": self._scan}
        if len(after) > 1:
            groups = range(self.slice.groups)
            params["c_tx"] = [after[g].tx_id if g in after else 0 for g in groups]
            params["c_pos"] = [after[g].position if g in after else 0 for g in groups]
            params["l_tx"] = [limits[g].tx_id if g in after else 0 for g in groups]
            params["l_pos"] = [limits[g].position if g in after else 0 for g in groups]
        return params

    async def remaining(self) -> int:
        """Events between this replay's checkpoints and its bounds."""
        async with self.db.statement("replay_count_remaining") as conn:
            params = self._params(self.checkpoints, await self.bound.read(conn))
            if params is None:
                return 0
            cur = await conn.execute(self._count_sql, params)
            return (await cur.fetchone())["n"]

    async def run(self, progress: Progress) -> int:
        """Chunk after chunk, each in its own transaction, until a scan comes back short
        (the replay is then within a chunk of its bounds).
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
                # The live checkpoints are read again for every chunk (the pass follows the
                # projector); another bound once per pass (the switch catches up the rest).
                bounds = None if self.bound.kind == "live" else await self.bound.read(reader)
                reading = asyncio.create_task(self._read(reader, self.checkpoints, bounds))
                in_flight = ChunkRows()  # the rows of the chunk being written
                while True:
                    chunk = await reading
                    reading = None
                    full = chunk.full
                    if full:
                        reading = asyncio.create_task(self._read(reader, chunk.last, bounds))
                    if not chunk.events:  # none of the slice's in the events scanned
                        if full:
                            continue
                        break
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

    async def catch_up_on(self, conn: psycopg.AsyncConnection, progress: Progress,
                          bounds: list[Checkpoint] | None = None) -> int:
        """Up to its bounds as ``conn``'s transaction sees them (or ``bounds``, one per
        partition of the bound), inside that transaction (the caller holds the live
        checkpoints still, or reads a snapshot). Each group ends exactly at its bound."""
        total = 0
        with fewer_gc_passes():
            while True:
                chunk = await self._read(conn, self.checkpoints, bounds)
                await self._apply(conn, chunk)
                total += len(chunk.events)
                progress(len(chunk.events))
                if not chunk.full:
                    return total

    # --- one chunk -------------------------------------------------------------------------

    async def _read(self, conn: psycopg.AsyncConnection, after: dict[int, Checkpoint],
                    bounds: list[Checkpoint] | None = None) -> Chunk:
        """The next chunk after ``after``, and where each group stands after it: at the
        last event scanned, or at its own bound if that comes first; at its bound if the
        scan came back short (every event of the group up to there is in it)."""
        if bounds is None:
            bounds = await self.bound.read(conn)
        params = self._params(after, bounds)
        rows = []
        if params is not None:
            cur = conn.cursor(row_factory=tuple_row)
            await cur.execute(self._read_sql, params)
            rows = await cur.fetchall()
        full = len(rows) == self._scan
        last = Checkpoint(rows[-1][0], rows[-1][1]) if full else None
        moved = {}
        for g, c in after.items():
            bound = bounds[g % len(bounds)]
            moved[g] = max(c, min(last, bound) if last is not None else bound)
        customers: dict[str, UUID] = {}
        decode = Decoder(self.upcasters)
        events = []
        for _tx, _pos, type_, schema_version, data, customer in rows:
            if data is None:  # not the slice's
                continue
            customer_id = customers.get(customer)
            if customer_id is None:
                customer_id = customers[customer] = UUID(customer)
            events.append((decode(type_, schema_version, data), customer_id))
        return Chunk(events, moved, full)

    async def _apply(self, conn: psycopg.AsyncConnection, chunk: Chunk) -> None:
        """One chunk on one connection, in the caller's transaction."""
        if chunk.events:
            need = touched(event for event, _ in chunk.events)
            chats = await self._take(conn, CHATS, need.chats_to_load)
            messages = await self._take(conn, MESSAGES, need.messages_to_load)
            await self._delete(conn, PARTICIPANTS, need.participants_to_delete)
            await self._write_rows(conn, fold(chunk.events, chats, messages))
        await self._save_checkpoints(conn, chunk.last)

    async def _write_chunk(self, chunk: Chunk, rows: ChunkRows,
                           old: dict[Table, list[UUID]], progress: Progress) -> None:
        """A folded chunk, in its own transaction: the old versions of its rows go, the
        new ones come, with the checkpoint."""
        async with self.db.transaction("replay_chunk") as conn:
            for table, ids in old.items():
                await self._delete(conn, table, ids)
            await self._write_rows(conn, rows)
            await self._save_checkpoints(conn, chunk.last)
        progress(len(chunk.events))

    async def _save_checkpoints(self, conn: psycopg.AsyncConnection,
                                moved: dict[int, Checkpoint]) -> None:
        """The groups' checkpoints that moved, in ``conn``'s transaction
        (``self.checkpoints`` follows at once: a caller rolling back loads them again)."""
        changed = [g for g, c in moved.items() if c != self.checkpoints.get(g)]
        if changed:
            await conn.execute(_SAVE_CHECKPOINTS, (
                changed, [moved[g].tx_id for g in changed], [moved[g].position for g in changed],
                self.checkpoint_name))
        self.checkpoints = dict(moved)

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
