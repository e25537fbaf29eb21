"""Places in the global order the tests wait for: the store's head and the live
projection's checkpoint (one partition), each read with one statement on a ``Database``."""

from __future__ import annotations

from events.envelope import START, Checkpoint


async def stored_head(db) -> Checkpoint:
    """The last committed event in the global order, read from the table itself: not through
    ``read_all``, whose barrier (the server-wide oldest open transaction, another database's
    included) could answer an earlier place, and with it a wait for the projector that ends
    before the projector has seen everything."""
    async with db.statement("test_head") as conn:
        cur = await conn.execute(
            "SELECT tx_id::text::bigint AS tx, position FROM events"
            " ORDER BY tx_id DESC, position DESC LIMIT 1")
        row = await cur.fetchone()
    return Checkpoint(row["tx"], row["position"]) if row else START


async def live_checkpoint(db) -> Checkpoint:
    """The live projection's checkpoint (``read_model``, one partition)."""
    async with db.statement("test_live_checkpoint") as conn:
        cur = await conn.execute(
            "SELECT last_tx::text::bigint AS tx, last_pos FROM projector_checkpoints"
            " WHERE name = 'read_model'")
        row = await cur.fetchone()
    return Checkpoint(row["tx"], row["last_pos"])
