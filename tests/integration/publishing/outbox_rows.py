"""Reading the outbox in tests."""

from __future__ import annotations

from uuid import UUID


async def outbox_count(db, customer_id: UUID | None = None) -> int:
    async with db.statement("test_outbox_count") as conn:
        if customer_id is None:
            cur = await conn.execute("SELECT count(*) AS n FROM outbox")
        else:
            cur = await conn.execute("SELECT count(*) AS n FROM outbox WHERE customer_id = %s",
                                     (customer_id,))
        return (await cur.fetchone())["n"]
