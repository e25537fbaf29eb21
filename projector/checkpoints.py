"""The projector's checkpoint: the ``(tx_id, position)`` of the last event applied, stored in
the same transaction as the read-table writes it stands for."""

from __future__ import annotations

import psycopg

from events.envelope import Checkpoint


async def load_checkpoint(conn: psycopg.AsyncConnection, name: str) -> Checkpoint:
    cur = await conn.execute(
        "SELECT last_tx::text::bigint AS tx, last_pos FROM projector_checkpoints WHERE name = %s",
        (name,),
    )
    row = await cur.fetchone()
    if row is None:
        await conn.execute(
            "INSERT INTO projector_checkpoints (name) VALUES (%s) ON CONFLICT DO NOTHING", (name,)
        )
        return Checkpoint()
    return Checkpoint(row["tx"], row["last_pos"])


async def lock_checkpoint(conn: psycopg.AsyncConnection, name: str) -> None:
    """Lock the checkpoint's row until the transaction ends. The switch of ``talk projections
    rebuild`` does this first thing, and a projector batch takes the same lock first (its
    :func:`save_checkpoint` is its first statement): the two take their other locks (the read
    tables, the views) only after it, so they queue instead of deadlocking, and a batch runs
    wholly before or wholly after a switch."""
    await conn.execute("SELECT 1 FROM projector_checkpoints WHERE name = %s FOR UPDATE", (name,))


async def save_checkpoint(conn: psycopg.AsyncConnection, name: str, cp: Checkpoint) -> None:
    await conn.execute(
        "UPDATE projector_checkpoints SET last_tx = %s::text::xid8, last_pos = %s, updated_at = now()"
        " WHERE name = %s",
        (str(cp.tx_id), cp.position, name),
    )
