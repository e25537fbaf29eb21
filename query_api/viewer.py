"""A talk as one agent sees it: ``unread_count``, ``mention_count``, ``last_message`` and
``tm_last_message`` (the list and the get of talks add these to the Talk resource).

unread = the talk's normal messages - those up to the agent's marker (``read_n``) - the
deleted ones after the marker. The agent's own messages are never after its marker (posting
moves it), so they never count. Mentions are counted among the live messages after the marker
that name the agent. Both subqueries walk partial indexes over the deleted and the mentioning
messages after the marker only: what a talk costs here does not grow with its size.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from query_api.resources import message_resource
from services.db import Database
from services.timefmt import format_ts

_VIEW = """
SELECT p.chat_id,
       c.normal_count - p.read_n - (
           SELECT count(*) FROM rm_messages d
            WHERE d.chat_id = p.chat_id AND d.tm_delete IS NOT NULL AND d.type = 'normal'
              AND d.n > p.read_n) AS unread_count,
       (SELECT count(*) FROM rm_messages m
         WHERE m.chat_id = p.chat_id AND m.mentions <> '[]'::jsonb AND m.tm_delete IS NULL
           AND m.n > p.read_n AND m.mentions @> jsonb_build_array(p.owner_id::text)
       ) AS mention_count
  FROM rm_participants p JOIN rm_chats c ON c.id = p.chat_id
 WHERE p.chat_id = ANY(%s) AND p.owner_id = %s
"""

_LAST = "SELECT * FROM rm_messages WHERE id = ANY(%s)"


async def with_viewer(db: Database, agent_id: UUID, chats: list[dict[str, Any]],
                      resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``resources`` (the Talk resources of the rows ``chats``) with the agent's fields."""
    if not chats:
        return resources
    ids = [row["id"] for row in chats]
    last_ids = [row["last_message_id"] for row in chats if row.get("last_message_id")]
    async with db.statement("talk_viewer_fields") as conn:
        cur = await conn.execute(_VIEW, (ids, agent_id))
        counts = {row["chat_id"]: row for row in await cur.fetchall()}
        last: dict[UUID, dict[str, Any]] = {}
        if last_ids:
            cur = await conn.execute(_LAST, (last_ids,))
            last = {row["id"]: row for row in await cur.fetchall()}
    out = []
    for row, resource in zip(chats, resources, strict=True):
        seen = counts.get(row["id"])
        message = last.get(row.get("last_message_id"))
        out.append({
            **resource,
            "unread_count": max(0, seen["unread_count"]) if seen else 0,
            "mention_count": seen["mention_count"] if seen else 0,
            "last_message": message_resource(message) if message else None,
            "tm_last_message": format_ts(row.get("tm_last_message")),
        })
    return out
