"""A ledger of every committed write to the live read tables, to prove that each event was
applied exactly once, whatever its applier does (an INSERT that would fail loudly if run
twice, or an UPDATE like ``member_count + 1``, a reaction appended, a text set again, that
a second run would change silently or not at all).

A trigger on each live read table records ``(table, operation, row id)`` in the writing
transaction, so a batch that rolls back (a crash) leaves no entry; another records where each
committed batch of the live projection ended (its checkpoint's move). The reference is the
ledger of the whole history applied once, in the batches the live projector committed (per
partition), with the projector's own ``apply_events`` (a batch writes each row it touches
once, so the writes depend on where batches end), into a scratch copy of the tables, inside
a transaction that is rolled back. Live and reference must be the same multiset: an event
applied twice adds entries."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import psycopg
from psycopg.rows import dict_row

from events.envelope import START, Checkpoint, StoredEvent
from events.postgres_store import read_all_on
from projector import read_model
from projector.partitioning import partition_of
from projector.read_schema import current_version, version_schema
from tests.support import wait_until

Entry = tuple[str, str, str]  # table, operation, row id

_SETUP = """
CREATE SCHEMA test_ledger;
CREATE TABLE test_ledger.writes (schema_name text, table_name text, op text, row_id text);
CREATE FUNCTION test_ledger.record() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE r jsonb := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
BEGIN
  INSERT INTO test_ledger.writes
  VALUES (TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP, coalesce(r->>'id', r::text));
  RETURN NULL;
END $$;
CREATE TABLE test_ledger.batch_ends (partition integer, partitions integer, last_tx bigint,
                                     last_pos bigint);
CREATE FUNCTION test_ledger.record_batch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO test_ledger.batch_ends
  VALUES (NEW.partition, NEW.partitions, NEW.last_tx::text::bigint, NEW.last_pos);
  RETURN NULL;
END $$;
CREATE TRIGGER test_ledger AFTER UPDATE OF last_tx, last_pos ON projector_checkpoints
  FOR EACH ROW WHEN (NEW.name = 'read_model'
                     AND (OLD.last_tx, OLD.last_pos) IS DISTINCT FROM (NEW.last_tx, NEW.last_pos))
  EXECUTE FUNCTION test_ledger.record_batch();
"""

_TABLES = ("SELECT table_name FROM information_schema.tables WHERE table_schema = %s"
           " AND table_type = 'BASE TABLE' ORDER BY table_name")


async def _record_writes_of(conn: psycopg.AsyncConnection, schema: str) -> list[str]:
    cur = await conn.execute(_TABLES, (schema,))
    tables = [row["table_name"] for row in await cur.fetchall()]
    for table in tables:
        await conn.execute(
            f"CREATE TRIGGER test_ledger AFTER INSERT OR UPDATE OR DELETE ON {schema}.{table}"
            f" FOR EACH ROW EXECUTE FUNCTION test_ledger.record()")
    return tables


async def install(url: str) -> str:
    """Record every write to the live read tables of the database at ``url`` (a database
    of the test's own); returns the live schema."""
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        await conn.execute(_SETUP)
        schema = version_schema(await current_version(conn))
        assert await _record_writes_of(conn, schema), f"no read tables in {schema}"
        await conn.commit()
    return schema


async def live_writes(url: str, schema: str) -> Counter[Entry]:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        cur = await conn.execute("SELECT table_name, op, row_id FROM test_ledger.writes"
                                 " WHERE schema_name = %s", (schema,))
        return Counter((r["table_name"], r["op"], r["row_id"]) for r in await cur.fetchall())


async def reference_writes(url: str, live_schema: str, *, twice: str | None = None,
                           ) -> tuple[Counter[Entry], Counter[str]]:
    """The ledger of the whole history applied once, in the live projector's batches (each
    event of type ``twice`` applied once more after its batch, to show what a double apply
    looks like), and how many events of each type it applied. Nothing stays: it all happens
    in a transaction that is rolled back."""
    await wait_until(lambda: _all_readable(url), timeout=60, what="every stored event readable in order")
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        try:
            await conn.execute("CREATE SCHEMA test_ledger_reference")
            cur = await conn.execute(_TABLES, (live_schema,))
            for row in await cur.fetchall():
                await conn.execute(
                    f"CREATE TABLE test_ledger_reference.{row['table_name']}"
                    f" (LIKE {live_schema}.{row['table_name']} INCLUDING ALL)")
            await _record_writes_of(conn, "test_ledger_reference")
            # The appliers name the tables unqualified: the scratch copy comes first.
            await conn.execute("SET LOCAL search_path TO test_ledger_reference, public")
            types = await _apply_history(conn, lambda t: 2 if t == twice else 1,
                                         await _batch_ends(conn))
            cur = await conn.execute("SELECT table_name, op, row_id FROM test_ledger.writes"
                                     " WHERE schema_name = 'test_ledger_reference'")
            ledger = Counter((r["table_name"], r["op"], r["row_id"]) for r in await cur.fetchall())
        finally:
            await conn.rollback()
    return ledger, types


BatchEnds = tuple[int, dict[int, list[Checkpoint]]]  # partitions, partition -> batch ends


async def _batch_ends(conn: psycopg.AsyncConnection) -> BatchEnds:
    """How many partitions the live projection had (1 if it committed nothing) and, per
    partition, where its committed batches ended, in order."""
    cur = await conn.execute("SELECT partition, partitions, last_tx, last_pos"
                             " FROM test_ledger.batch_ends")
    ends: dict[int, list[Checkpoint]] = {}
    partitions = 1
    for row in await cur.fetchall():
        partitions = row["partitions"]
        ends.setdefault(row["partition"], []).append(Checkpoint(row["last_tx"], row["last_pos"]))
    for cps in ends.values():
        cps.sort()
    return partitions, ends


async def _apply_history(conn: psycopg.AsyncConnection, times: Callable[[str], int],
                         batch_ends: BatchEnds) -> Counter[str]:
    """Each partition's events in its recorded batches (events after the last one recorded,
    each alone); an event ``times(type)`` times in all (the repeats after its batch)."""
    history: list[StoredEvent] = []
    checkpoint = START
    while batch := await read_all_on(conn, checkpoint, 5000):
        history += batch
        checkpoint = batch[-1].checkpoint
    partitions, ends = batch_ends
    types: Counter[str] = Counter()
    for partition in range(partitions):
        events = [s for s in history
                  if partition_of(s.data["chat_id"], partitions) == partition]
        ahead = iter(ends.get(partition, []))
        end = next(ahead, None)
        batch: list[StoredEvent] = []
        for stored in events:
            batch.append(stored)
            while end is not None and end < stored.checkpoint:
                end = next(ahead, None)
            if end is None or stored.checkpoint == end:
                await _apply_batch(conn, batch, times)
                batch = []
        await _apply_batch(conn, batch, times)
        types.update(s.type for s in events)
    return types


async def _apply_batch(conn: psycopg.AsyncConnection, batch: list[StoredEvent],
                       times: Callable[[str], int]) -> None:
    if batch:
        async with conn.pipeline():  # as the projector runs a batch
            await read_model.apply_events(conn, batch)
            for stored in batch:
                for _ in range(times(stored.type) - 1):
                    await read_model.apply_event(conn, stored)


async def _all_readable(url: str) -> bool:
    # An open transaction anywhere on the server holds the ordered reads back for a moment.
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        stored = (await (await conn.execute("SELECT count(*) AS n FROM events")).fetchone())["n"]
        readable, checkpoint = 0, START
        while batch := await read_all_on(conn, checkpoint, 10_000):
            readable += len(batch)
            checkpoint = batch[-1].checkpoint
        return readable == stored


def differences(live: Counter[Entry], reference: Counter[Entry], shown: int = 10) -> list[str]:
    """Entries written a different number of times live than by one application."""
    out = []
    for entry in sorted(set(live) | set(reference)):
        if live[entry] != reference[entry]:
            out.append(f"{entry}: {live[entry]} live, {reference[entry]} applied once")
    return out[:shown] + ([f"... {len(out) - shown} more"] if len(out) > shown else [])
