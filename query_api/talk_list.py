"""A page of an agent's talks as it sees them (``GET talk_chats``), in one statement: the
keyset page of its talks (newest first by ``tm_create``, or by activity), then, for the
page's rows only, the viewer's fields (query_api/viewer.py) and the newest message.

The page is a subquery with its ``LIMIT``, so the counts and the newest message are read for
the rows of the page and never for the agent's other talks. Each row is the talk's key
(``id``, ``page_key``: what the next page token names) and then the values of its resource,
as the API writes them, in the resource's order (``talk_columns`` is ``chat_resource`` in
SQL; the two must say the same).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.rows import tuple_row

from query_api.pagination import Cursor
from query_api.viewer import VIEWER_WIDTH, api_ts, viewer_columns, viewer_fields
from services.db import Database

ACTIVITY = "coalesce(c.tm_last_message, c.tm_create)"  # the key of rm_chats_by_activity

# chat_resource's fields, in its order.
TALK_FIELDS = ("id", "customer_id", "type", "name", "detail", "member_count", "status",
               "tm_create", "tm_update", "tm_delete")


def talk_columns(c: str) -> list[str]:
    """SQL: the values of ``chat_resource`` of the ``rm_chats`` row ``c``, in the order of
    :data:`TALK_FIELDS`."""
    return [f"{c}.id::text", f"{c}.customer_id::text", f"{c}.type", f"{c}.name", f"{c}.detail",
            f"{c}.member_count", f"coalesce(nullif({c}.status, ''), 'active')",
            api_ts(f"{c}.tm_create"), api_ts(f"{c}.tm_update"), api_ts(f"{c}.tm_delete")]


_KEY = 2  # id, page_key
_VIEWER = _KEY + len(TALK_FIELDS)
_TM_LAST_MESSAGE = _VIEWER + VIEWER_WIDTH


class TalkPage:
    """The rows of one page (``LIMIT page_size + 1``, as pagination.page_envelope wants)."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows

    def keys(self) -> list[dict[str, Any]]:
        """Each row's ``id`` and ``page_key`` (for pagination.page_envelope)."""
        return [{"id": row[0], "page_key": row[1]} for row in self.rows]

    def resources(self, limit: int) -> list[dict[str, Any]]:
        """The Talk resources, with the viewer's fields, of the first ``limit`` rows."""
        out = []
        for row in self.rows[:limit]:
            resource = dict(zip(TALK_FIELDS, row[_KEY:_VIEWER], strict=True))
            resource.update(viewer_fields(row[_VIEWER:_TM_LAST_MESSAGE]))
            resource["tm_last_message"] = row[_TM_LAST_MESSAGE]
            out.append(resource)
        return out


async def seen_talks_of_agent(db: Database, customer_id: UUID, agent_id: UUID,
                              cursor: Cursor | None, limit: int, *, status: str | None = None,
                              order: str = "created") -> TalkPage:
    """Up to ``limit`` of the agent's talks, newest first by ``tm_create`` or, for
    ``order="activity"``, by ``coalesce(tm_last_message, tm_create)`` (the ``page_key``)."""
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
    columns = ", ".join(["page.id", "page.page_key", *talk_columns("page"),
                         viewer_columns("page", "page", "lm"),
                         api_ts("page.tm_last_message")])
    sql = (f"SELECT {columns} FROM ({page}) page"
           " LEFT JOIN rm_messages lm ON lm.id = page.last_message_id"
           " ORDER BY page.page_key DESC, page.id DESC")
    async with db.statement("list_chats") as conn:
        cur = conn.cursor(row_factory=tuple_row)
        await cur.execute(sql, params)
        return TalkPage(await cur.fetchall())
