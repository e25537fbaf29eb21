"""Partitioned projection, in one process: the partition function agrees with its SQL twin,
each partition's read walks its own index, the checkpoints' layout is laid out on a fresh
projection and refused on a used one, and X-Talk-Min-Position's "reached" holds across
partitions (an idle partition far behind does not hold it back; a partition with an event
still to apply does). The multi-process share, takeover and publishing are in
tests/integration/partitions/."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.rows import dict_row

from events.envelope import Checkpoint
from events.postgres_store import PostgresEventStore, _read_partition
from projector.checkpoints import (
    LAYOUT_CHANGED,
    LayoutMismatch,
    ensure_layout,
    save_checkpoint,
)
from projector.partition_share import PartitionShare, _ensure_partition_index
from projector.partitioning import partition_index_name, partition_of
from query_api.read_store import ReadStore
from services.db import Database, make_pool
from tests.factories import new_chat_append, rename
from tests.support import wait_until

PARTITIONS = 4


async def test_partition_of_matches_talk_partition_in_sql(fresh_database_url):
    ids = [uuid4() for _ in range(200)]
    async with await psycopg.AsyncConnection.connect(fresh_database_url) as conn:
        for n in (2, 3, 4, 8, 1024):
            cur = await conn.execute(
                "SELECT talk_partition(id::text, %s) FROM unnest(%s::uuid[]) WITH ORDINALITY"
                " AS t(id, o) ORDER BY o", (n, ids))
            assert [r[0] for r in await cur.fetchall()] == [partition_of(i, n) for i in ids]
    assert {partition_of(i, 4) for i in ids} == {0, 1, 2, 3}


async def test_a_partitions_read_walks_its_index(fresh_database_url):
    async with await psycopg.AsyncConnection.connect(fresh_database_url, autocommit=True,
                                                   row_factory=dict_row) as conn:
        await _ensure_partition_index(conn, PARTITIONS)
        await _ensure_partition_index(conn, PARTITIONS)  # a second look builds nothing
        await conn.execute("SET enable_seqscan = off")  # an empty table: only the index says
        cur = await conn.execute("EXPLAIN " + _read_partition(PARTITIONS), (1, "0", 0, 100))
        plan = "\n".join(r["QUERY PLAN"] for r in await cur.fetchall())
    assert partition_index_name(PARTITIONS) in plan, plan
    assert "Sort" not in plan, plan  # the index gives the global order


async def test_a_layout_is_laid_out_when_unused_and_guarded_once_used(fresh_database_url):
    async with await psycopg.AsyncConnection.connect(fresh_database_url, autocommit=True,
                                                   row_factory=dict_row) as conn:
        await ensure_layout(conn, "read_model", PARTITIONS)
        cur = await conn.execute("SELECT partition, partitions FROM projector_checkpoints"
                                 " WHERE name = 'read_model' ORDER BY partition")
        assert [(r["partition"], r["partitions"]) for r in await cur.fetchall()] == [
            (p, PARTITIONS) for p in range(PARTITIONS)]
        await save_checkpoint(conn, "read_model", Checkpoint(5, 7), 2, PARTITIONS)
        await ensure_layout(conn, "read_model", PARTITIONS)  # the same layout: nothing to do
        with pytest.raises(LayoutMismatch, match="talk projections rebuild"):
            await ensure_layout(conn, "read_model", 2)
        # A batch of a projector still on another layout cannot save into this one.
        with pytest.raises(psycopg.Error) as refused:
            await save_checkpoint(conn, "read_model", Checkpoint(6, 9), 1, 2)
        assert refused.value.sqlstate == LAYOUT_CHANGED
        cur = await conn.execute("SELECT last_pos FROM projector_checkpoints"
                                 " WHERE name = 'read_model' ORDER BY partition")
        assert [r["last_pos"] for r in await cur.fetchall()] == [0, 0, 7, 0]
        cur = await conn.execute("SELECT count(*) AS n FROM projector_checkpoints")
        assert (await cur.fetchone())["n"] == PARTITIONS  # the refusal changed nothing


def _talk_in(partition: int) -> UUID:
    while True:
        chat_id = uuid4()
        if partition_of(chat_id, PARTITIONS) == partition:
            return chat_id


async def test_min_position_reached_across_partitions(fresh_database_url, settings):
    local = settings.model_copy(update={"database_url": fresh_database_url,
                                        "projector_partitions": PARTITIONS})
    pool = make_pool(local, min_size=1, max_size=4, name="talk-test-partitions")
    await pool.open()
    db = Database(pool)
    store, reads = PostgresEventStore(db), ReadStore(db)  # it finds the layout itself
    try:
        busy, later = _talk_in(0), _talk_in(3)
        append, md = new_chat_append(later)
        first = await store.append([append], md)  # partition 3's only event, first of all
        append, md = new_chat_append(busy)
        await store.append([append], md)
        for version in range(1, 6):
            last = await store.append([rename(busy, version, f"name {version}")], md)
        target = Checkpoint(last.tx_id, last.positions[-1])

        stop = asyncio.Event()
        share = PartitionShare(local)
        running = asyncio.create_task(share.run(stop))
        try:
            await wait_until(lambda: reads.projection_reached(target), timeout=20,
                             what="every partition past the last rename")
            assert share.owned == [0, 1, 2, 3]
        finally:
            stop.set()
            await running
        # Partitions 1 and 2 applied nothing (their checkpoints are at the start), yet the
        # target is reached: none of their events lies before it.
        async with db.statement("test_checkpoints") as conn:
            cur = await conn.execute("SELECT partition, last_pos FROM projector_checkpoints"
                                     " WHERE name = 'read_model' ORDER BY partition")
            places = {r["partition"]: r["last_pos"] for r in await cur.fetchall()}
        assert places[1] == places[2] == 0 and places[3] == first.positions[0]

        # With the projectors stopped, an event of partition 3 holds that partition back.
        pending = await store.append([rename(later, 1, "renamed")], md)
        assert not await reads.projection_reached(Checkpoint(pending.tx_id, pending.positions[0]))
        assert await reads.projection_reached(target)  # what came before is still reached
    finally:
        await pool.close()
