"""A talk as one agent sees it: ``unread_count``, ``mention_count``, ``last_message`` and
``tm_last_message`` (the list and the get of talks add these to the Talk resource).

unread = the talk's normal messages - those up to the agent's marker (``read_n``) - the
deleted ones after the marker. The agent's own messages are never after its marker (posting
moves it), so they never count. Mentions are counted among the live messages after the marker
that name the agent. Both subqueries walk partial indexes over the deleted and the mentioning
messages after the marker only: what a talk costs here does not grow with its size.

The fields are columns of the statement that reads the talks (:func:`viewer_columns` and
:data:`LAST_MESSAGE_JOIN`), so a page of talks is one round trip (query_api/talk_list.py);
:func:`seen_resource` makes the resource of such a row.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from query_api.resources import chat_resource, message_resource
from services.db import Database
from services.timefmt import format_ts

# The columns of the talk's newest message (``lm``) that message_resource reads, each
# selected as "last_message.<column>".
LAST_MESSAGE_COLUMNS = ("id", "customer_id", "owner_type", "owner_id", "chat_id", "parent_id",
                        "type", "text", "medias", "reactions", "mentions", "reply_count",
                        "tm_last_reply", "tm_create", "tm_update", "tm_delete")
_LAST_KEYS = tuple((f"last_message.{col}", col) for col in LAST_MESSAGE_COLUMNS)
LAST_MESSAGE_JOIN = "LEFT JOIN rm_messages lm ON lm.id = {chat}.last_message_id"


def viewer_columns(chat: str, participant: str) -> str:
    """The select list of the viewer's fields, over the relations named ``chat`` (its ``id``,
    ``normal_count``) and ``participant`` (the agent's row: ``read_n``, ``owner_id``;
    NULLs when it has none), and ``lm`` joined by :data:`LAST_MESSAGE_JOIN`."""
    c, p = chat, participant
    last = ", ".join(f'lm.{col} AS "last_message.{col}"' for col in LAST_MESSAGE_COLUMNS)
    return f"""
       {c}.normal_count - {p}.read_n - (
           SELECT count(*) FROM rm_messages d
            WHERE d.chat_id = {c}.id AND d.tm_delete IS NOT NULL AND d.type = 'normal'
              AND d.n > {p}.read_n) AS unread_count,
       (SELECT count(*) FROM rm_messages m
         WHERE m.chat_id = {c}.id AND m.mentions <> '[]'::jsonb AND m.tm_delete IS NULL
           AND m.n > {p}.read_n AND m.mentions @> jsonb_build_array({p}.owner_id::text)
       ) AS mention_count,
       {last}"""


def viewer_fields(row: dict[str, Any]) -> dict[str, Any]:
    """The agent's fields of a row read with :func:`viewer_columns`."""
    unread = row["unread_count"]
    last = None
    if row["last_message.id"] is not None:
        last = message_resource({col: row[key] for key, col in _LAST_KEYS})
    return {
        "unread_count": max(0, unread) if unread is not None else 0,
        "mention_count": row["mention_count"] or 0,
        "last_message": last,
        "tm_last_message": format_ts(row.get("tm_last_message")),
    }


def seen_resource(row: dict[str, Any]) -> dict[str, Any]:
    """The Talk resource of a row of ``rm_chats`` read with :func:`viewer_columns`, with the
    agent's fields."""
    resource = chat_resource(row)
    resource.update(viewer_fields(row))
    return resource


_VIEW = f"""
SELECT v.chat_id, {viewer_columns("c", "p")}
  FROM unnest(%s::uuid[], %s::uuid[]) AS v(chat_id, last_message_id)
  LEFT JOIN rm_chats c ON c.id = v.chat_id
  LEFT JOIN rm_participants p ON p.chat_id = v.chat_id AND p.owner_id = %s
  {LAST_MESSAGE_JOIN.format(chat="v")}
"""


async def with_viewer(db: Database, agent_id: UUID, chats: list[dict[str, Any]],
                      resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``resources`` (the Talk resources of the rows ``chats``) with the agent's fields, read
    in one statement (``last_message``: the message the row names)."""
    if not chats:
        return resources
    ids = [row["id"] for row in chats]
    last_ids = [row.get("last_message_id") for row in chats]
    async with db.statement("talk_viewer_fields") as conn:
        cur = await conn.execute(_VIEW, (ids, last_ids, agent_id))
        seen = {row["chat_id"]: row for row in await cur.fetchall()}
    return [{**resource, **viewer_fields({**seen[row["id"]],
                                          "tm_last_message": row.get("tm_last_message")})}
            for row, resource in zip(chats, resources, strict=True)]
