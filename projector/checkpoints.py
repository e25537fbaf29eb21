"""The projector's checkpoints: per partition, the ``(tx_id, position)`` of the last event
applied, stored in the same transaction as the read-table writes it stands for.

A projection (``name``) has one row per partition, ``partition`` of ``partitions``
(TALK_PROJECTOR_PARTITIONS; a single partition is ``0`` of ``1``). The number is fixed per
deployment: :func:`set_checkpoints` lays the rows out anew (a rebuild's switch, or the first
start of a projection that has applied nothing yet).
"""

from __future__ import annotations

import psycopg

from events.envelope import Checkpoint


async def load_checkpoint(conn: psycopg.AsyncConnection, name: str,
                          partition: int = 0) -> Checkpoint:
    cur = await conn.execute(
        "SELECT last_tx::text::bigint AS tx, last_pos FROM projector_checkpoints"
        " WHERE name = %s AND partition = %s",
        (name, partition),
    )
    row = await cur.fetchone()
    if row is None:
        if partition == 0:
            await conn.execute(
                "INSERT INTO projector_checkpoints (name) VALUES (%s) ON CONFLICT DO NOTHING",
                (name,))
        return Checkpoint()
    return Checkpoint(row["tx"], row["last_pos"])


async def stored_partitions(conn: psycopg.AsyncConnection, name: str) -> tuple[int, bool]:
    """How many partitions the checkpoints of ``name`` are laid out in, and whether any of
    them has applied an event (``(1, False)`` when there is no row yet)."""
    cur = await conn.execute(
        "SELECT coalesce(max(partitions), 1) AS n, coalesce(bool_or(last_pos > 0), false) AS used"
        " FROM projector_checkpoints WHERE name = %s", (name,))
    row = await cur.fetchone()
    return row["n"], row["used"]


async def set_checkpoints(conn: psycopg.AsyncConnection, name: str, cp: Checkpoint,
                          partitions: int) -> None:
    """Lay the checkpoints of ``name`` out in ``partitions`` rows, each at ``cp``: correct only
    when every event up to ``cp`` and none after it is in the read tables."""
    await conn.execute("DELETE FROM projector_checkpoints WHERE name = %s", (name,))
    await conn.execute(
        "INSERT INTO projector_checkpoints (name, partition, partitions, last_tx, last_pos)"
        " SELECT %s, p, %s, %s::text::xid8, %s FROM generate_series(0, %s - 1) AS p",
        (name, partitions, str(cp.tx_id), cp.position, partitions))


async def lock_checkpoint(conn: psycopg.AsyncConnection, name: str) -> None:
    """Lock the checkpoint rows of ``name`` (every partition's) until the transaction ends.
    The switch of ``talk projections rebuild`` does this first thing, and a projector batch
    takes the lock of its own row first (its :func:`save_checkpoint` is its first
    statement): the two take their other locks (the read tables, the views) only after it,
    so they queue instead of deadlocking, and a batch runs wholly before or wholly after a
    switch."""
    await conn.execute("SELECT 1 FROM projector_checkpoints WHERE name = %s"
                       " ORDER BY partition FOR UPDATE", (name,))


LAYOUT_CHANGED = "TK003"  # SQLSTATE of a save into a layout that is gone (migration 0012)


async def save_checkpoint(conn: psycopg.AsyncConnection, name: str, cp: Checkpoint,
                          partition: int = 0, partitions: int = 1) -> None:
    """Save partition ``partition`` (of ``partitions``)'s checkpoint; fails the transaction
    with :data:`LAYOUT_CHANGED` if the checkpoints are no longer laid out so (a rebuild
    changed the number meanwhile: the batch must not land in the new layout)."""
    await conn.execute(
        "WITH saved AS (UPDATE projector_checkpoints SET last_tx = %s::text::xid8,"
        " last_pos = %s, updated_at = now()"
        " WHERE name = %s AND partition = %s AND partitions = %s RETURNING 1)"
        " SELECT talk_checkpoint_layout_changed(%s, %s) WHERE NOT EXISTS (SELECT 1 FROM saved)",
        (str(cp.tx_id), cp.position, name, partition, partitions, name, partitions),
    )


class LayoutMismatch(RuntimeError):
    """The checkpoints are laid out in another number of partitions than configured."""


async def ensure_layout(conn: psycopg.AsyncConnection, name: str, partitions: int) -> None:
    """Make sure the checkpoints of ``name`` are laid out in ``partitions`` rows: lay them out
    when nothing has been applied yet (a new deployment, or a new setting before the first
    event); otherwise a different layout raises :class:`LayoutMismatch` (the number changes
    only with ``talk projections rebuild``). ``conn`` is in autocommit mode."""
    found, used = await stored_partitions(conn, name)
    if found == partitions:
        return
    async with conn.transaction():
        await lock_checkpoint(conn, name)  # another process may be laying them out too
        found, used = await stored_partitions(conn, name)
        if found == partitions:
            return
        if used:
            raise LayoutMismatch(
                f"the projection {name!r} is laid out in {found} partition(s) but "
                f"TALK_PROJECTOR_PARTITIONS={partitions}: stop the projectors and run "
                "`talk projections rebuild` with the new setting")
        await set_checkpoints(conn, name, Checkpoint(), partitions)
