"""A page of an agent's talks as it sees them (``GET talk_chats``), in one statement: the
keyset page of its talks (newest first by ``tm_create``, or by activity), then, for the
page's rows only, the viewer's fields (query_api/viewer.py) and the newest message.

The page is a subquery with its ``LIMIT``, so the counts and the newest message are read for
the rows of the page and never for the agent's other talks.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from query_api.pagination import Cursor
from query_api.viewer import LAST_MESSAGE_JOIN, viewer_columns
from services.db import Database

Row = dict[str, Any]
ACTIVITY = "coalesce(c.tm_last_message, c.tm_create)"  # the key of rm_chats_by_activity


async def seen_talks_of_agent(db: Database, customer_id: UUID, agent_id: UUID,
                              cursor: Cursor | None, limit: int, *, status: str | None = None,
                              order: str = "created") -> list[Row]:
    """The agent's talks, newest first by ``tm_create`` or, for ``order="activity"``, by
    ``coalesce(tm_last_message, tm_create)``; each row carries its key as ``page_key`` and
    the columns of :func:`query_api.viewer.viewer_columns`."""
    key = ACTIVITY if order == "activity" else "c.tm_create"
    page = (
        f"SELECT c.*, {key} AS page_key, p.read_n, p.owner_id"
        " FROM rm_participants p JOIN rm_chats c ON c.id = p.chat_id"
        " WHERE p.owner_id = %s AND p.customer_id = %s AND c.customer_id = %s"
        " AND c.tm_delete IS NULL"
    )
    params: list[Any] = [agent_id, customer_id, customer_id]
    if status is not None:
        page += " AND c.status = %s"
        params.append(status)
    if cursor:
        page += f" AND ({key}, c.id) < (%s, %s)"
        params += [cursor.tm_create, cursor.id]
    page += f" ORDER BY {key} DESC, c.id DESC LIMIT %s"
    params.append(limit)
    sql = (f"SELECT page.*, {viewer_columns('page', 'page')}"
           f" FROM ({page}) page {LAST_MESSAGE_JOIN.format(chat='page')}"
           " ORDER BY page.page_key DESC, page.id DESC")
    async with db.statement("list_chats") as conn:
        cur = await conn.execute(sql, params)
        return await cur.fetchall()
