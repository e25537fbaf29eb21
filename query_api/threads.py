"""A message's thread summary (``reply_count``, ``tm_last_reply``) as the read tables hold it.

A command on a message answers with the message folded from its own stream, which does not
hold its replies (each reply is a stream of its own); the command API adds this summary, as
the projection knew it when the command ran."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from services.db import Database

_SUMMARY = "SELECT reply_count, tm_last_reply FROM rm_messages WHERE id = %s"

NO_REPLIES: dict[str, Any] = {"reply_count": 0, "tm_last_reply": None}


async def thread_summary(db: Database, message_id: UUID) -> dict[str, Any]:
    async with db.statement("thread_summary") as conn:
        cur = await conn.execute(_SUMMARY, (message_id,))
        row = await cur.fetchone()
    return dict(row) if row else dict(NO_REPLIES)
