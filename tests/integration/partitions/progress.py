"""Where each partition of the live projection stands against the store: its checkpoint row
and the last committed event of its talks, read from the tables themselves (not through the
ordered read's barrier, which an open transaction anywhere on the server holds back)."""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row

from events.envelope import Checkpoint
from projector.partitioning import partition_expression


async def checkpoints(url: str, partitions: int) -> dict[int, Checkpoint]:
    """The committed checkpoint of each partition of the live projection."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        cur = await conn.execute(
            "SELECT partition, partitions, last_tx::text::bigint AS tx, last_pos"
            " FROM projector_checkpoints WHERE name = 'read_model' ORDER BY partition")
        rows = await cur.fetchall()
    assert [r["partition"] for r in rows] == list(range(partitions)), \
        f"checkpoint rows for partitions {[r['partition'] for r in rows]}"
    assert {r["partitions"] for r in rows} == {partitions}, rows
    return {r["partition"]: Checkpoint(r["tx"], r["last_pos"]) for r in rows}


async def reached(url: str, partitions: int, partition: int, at: Checkpoint) -> bool:
    """Whether ``partition``'s committed checkpoint is at ``at`` or past it."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        cur = await conn.execute(
            "SELECT last_tx::text::bigint AS tx, last_pos FROM projector_checkpoints"
            " WHERE name = 'read_model' AND partition = %s AND partitions = %s",
            (partition, partitions))
        row = await cur.fetchone()
    return row is not None and Checkpoint(row["tx"], row["last_pos"]) >= at


async def heads(url: str, partitions: int) -> dict[int, Checkpoint]:
    """The last committed event of each partition (partitions with no event are left out)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        cur = await conn.execute(
            f"SELECT DISTINCT ON (p) {partition_expression(partitions)} AS p,"
            "       tx_id::text::bigint AS tx, position"
            "  FROM events ORDER BY p, tx_id DESC, position DESC")
        return {r["p"]: Checkpoint(r["tx"], r["position"]) for r in await cur.fetchall()}


async def behind(url: str, partitions: int) -> dict[int, tuple[Checkpoint, Checkpoint]]:
    """The partitions whose checkpoint has not reached their last committed event:
    (checkpoint, head) of each."""
    done, last = await checkpoints(url, partitions), await heads(url, partitions)
    return {p: (done[p], head) for p, head in last.items() if done[p] < head}


async def all_caught_up(url: str, partitions: int) -> bool:
    return not await behind(url, partitions)
