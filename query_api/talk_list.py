"""A page of an agent's talks as it sees them (``GET talk_chats``), in one statement: the
keyset page of its talks (newest first by ``tm_create``, or by activity), then, for the
page's rows only, the viewer's fields (query_api/viewer.py) and the newest message.

The page is a subquery with its ``LIMIT``, so the counts and the newest message are read for
the rows of the page and never for the agent's other talks. Each row is the talk's key
(``id``, ``page_key``: what the next page token names) and its resource as one JSON object
(``talk_fields`` is ``chat_resource`` in SQL; the two must say the same).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.rows import tuple_row

from query_api.pagination import Cursor
from query_api.viewer import api_ts, json_object, viewer_fields
from services.db import Database

ACTIVITY = "coalesce(c.tm_last_message, c.tm_create)"  # the key of rm_chats_by_activity


def talk_fields(c: str) -> list[tuple[str, str]]:
    """SQL: ``chat_resource`` of the ``rm_chats`` row ``c`` (for viewer.json_object)."""
    return [("id", f"{c}.id"), ("customer_id", f"{c}.customer_id"), ("type", f"{c}.type"),
            ("name", f"{c}.name"), ("detail", f"{c}.detail"),
            ("member_count", f"{c}.member_count"),
            ("status", f"coalesce(nullif({c}.status, ''), 'active')"),
            ("tm_create", api_ts(f"{c}.tm_create")), ("tm_update", api_ts(f"{c}.tm_update")),
            ("tm_delete", api_ts(f"{c}.tm_delete"))]


_TALK = json_object([*talk_fields("page"), *viewer_fields("page", "page", "lm"),
                     ("tm_last_message", api_ts("page.tm_last_message"))])


class TalkPage:
    """The rows of one page (``LIMIT page_size + 1``, as pagination.page_envelope wants):
    ``(id, page_key, resource)``."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows

    def keys(self) -> list[dict[str, Any]]:
        """Each row's ``id`` and ``page_key`` (for pagination.page_envelope)."""
        return [{"id": row[0], "page_key": row[1]} for row in self.rows]

    def resources(self, limit: int) -> list[dict[str, Any]]:
        """The Talk resources, with the viewer's fields, of the first ``limit`` rows."""
        return [row[2] for row in self.rows[:limit]]


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
    sql = (f"SELECT page.id, page.page_key, {_TALK} FROM ({page}) page"
           " LEFT JOIN rm_messages lm ON lm.id = page.last_message_id"
           " ORDER BY page.page_key DESC, page.id DESC")
    async with db.statement("list_chats") as conn:
        cur = conn.cursor(row_factory=tuple_row)
        await cur.execute(sql, params)
        return TalkPage(await cur.fetchall())
