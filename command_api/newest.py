"""What marking read takes from the read tables (what a client has been shown): the newest
message of a talk (the default of ``POST talk_chats/{id}/read``), and the caller's marker
there, which posting also moves (so a read behind it records nothing and answers it)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from services.db import Database

_NEWEST = "SELECT last_message_id FROM rm_chats WHERE id = %s AND customer_id = %s"


_MARKER = (
    "SELECT p.last_read_message_id, p.tm_read, m.tm_create FROM rm_participants p"
    " JOIN rm_messages m ON m.id = p.last_read_message_id"
    " WHERE p.chat_id = %s AND p.owner_id = %s AND p.customer_id = %s"
)


async def projected_marker(db: Database, customer_id: UUID, chat_id: UUID, agent_id: UUID
                           ) -> tuple[UUID, datetime, datetime] | None:
    """The caller's marker in the read tables: (message id, tm_read, the message's tm_create)."""
    async with db.statement("projected_marker") as conn:
        cur = await conn.execute(_MARKER, (chat_id, agent_id, customer_id))
        row = await cur.fetchone()
    return (row["last_read_message_id"], row["tm_read"], row["tm_create"]) if row else None


async def newest_message(db: Database, customer_id: UUID, chat_id: UUID) -> UUID | None:
    async with db.statement("newest_message") as conn:
        cur = await conn.execute(_NEWEST, (chat_id, customer_id))
        row = await cur.fetchone()
    return row["last_message_id"] if row else None
