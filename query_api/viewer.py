"""A talk as one agent sees it: ``unread_count``, ``mention_count``, ``last_message`` and
``tm_last_message`` (the list and the get of talks add these to the Talk resource).

unread = the talk's normal messages - those up to the agent's marker (``read_n``) - the
deleted ones after the marker. The agent's own messages are never after its marker (posting
moves it), so they never count. Mentions are counted among the live messages after the marker
that name the agent. Both subqueries walk partial indexes over the deleted and the mentioning
messages after the marker only: what a talk costs here does not grow with its size.

The fields are read in the statement that reads the talks (:func:`viewer_fields`), so a page
of talks is one round trip (query_api/talk_list.py). They come as one JSON object per talk
(``json_build_object``, keys in the resource's order, ids as text, timestamps in the API's
format: :func:`api_ts`), which orjson turns into the resource's dict in one call: Python
makes no UUID, datetime or dict field by field only to print them again (most of a page's
CPU before). :func:`message_json` is ``message_resource`` (query_api/resources.py) in SQL;
the two must say the same.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from psycopg.rows import tuple_row

from services.db import Database
from services.timefmt import format_ts


def api_ts(expr: str) -> str:
    """SQL: the timestamptz ``expr`` as services.timefmt.format_ts writes it (UTC
    ``YYYY-MM-DD HH:MM:SS.ffffff``; ``""`` when unset)."""
    return f"coalesce(to_char({expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), '')"


def json_object(fields: list[tuple[str, str]]) -> str:
    """SQL: a JSON object of ``(name, expression)`` pairs, keys in that order."""
    return "json_build_object(" + ", ".join(f"'{name}', {expr}" for name, expr in fields) + ")"


def message_json(m: str) -> str:
    """SQL: ``message_resource`` of the ``rm_messages`` row ``m`` (NULL without one)."""
    return f"CASE WHEN {m}.id IS NULL THEN NULL ELSE " + json_object([
        ("id", f"{m}.id"), ("customer_id", f"{m}.customer_id"),
        ("owner_type", f"{m}.owner_type"), ("owner_id", f"{m}.owner_id"),
        ("chat_id", f"{m}.chat_id"), ("parent_id", f"coalesce({m}.parent_id::text, '')"),
        ("type", f"{m}.type"), ("text", f"{m}.text"), ("medias", f"{m}.medias"),
        ("metadata", f"json_build_object('reactions', {m}.reactions)"),
        ("mentions", f"coalesce({m}.mentions, '[]'::jsonb)"),
        ("reply_count", f"coalesce({m}.reply_count, 0)"),
        ("tm_last_reply", api_ts(f"{m}.tm_last_reply")), ("tm_create", api_ts(f"{m}.tm_create")),
        ("tm_update", api_ts(f"{m}.tm_update")), ("tm_delete", api_ts(f"{m}.tm_delete")),
    ]) + " END"


def viewer_fields(chat: str, participant: str, last: str) -> list[tuple[str, str]]:
    """SQL: ``unread_count``, ``mention_count`` and ``last_message`` (for
    :func:`json_object`) over the relations named ``chat`` (its ``id``, ``normal_count``),
    ``participant`` (the agent's row: ``read_n``, ``owner_id``; NULLs when it has none: no
    counts) and ``last`` (the newest message, joined ``LEFT``)."""
    c, p = chat, participant
    return [
        ("unread_count", f"""greatest(0, {c}.normal_count - {p}.read_n - (
             SELECT count(*) FROM rm_messages d
              WHERE d.chat_id = {c}.id AND d.tm_delete IS NOT NULL AND d.type = 'normal'
                AND d.n > {p}.read_n))"""),
        ("mention_count", f"""(SELECT count(*) FROM rm_messages m
              WHERE m.chat_id = {c}.id AND m.mentions <> '[]'::jsonb AND m.tm_delete IS NULL
                AND m.n > {p}.read_n AND m.mentions @> jsonb_build_array({p}.owner_id::text))"""),
        ("last_message", message_json(last)),
    ]


_VIEW = f"""
SELECT {json_object(viewer_fields("c", "p", "lm"))}
  FROM unnest(%s::uuid[], %s::uuid[]) WITH ORDINALITY AS v(chat_id, last_message_id, i)
  LEFT JOIN rm_chats c ON c.id = v.chat_id
  LEFT JOIN rm_participants p ON p.chat_id = v.chat_id AND p.owner_id = %s
  LEFT JOIN rm_messages lm ON lm.id = v.last_message_id
 ORDER BY v.i
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
        cur = conn.cursor(row_factory=tuple_row)
        await cur.execute(_VIEW, (ids, last_ids, agent_id))
        seen = await cur.fetchall()
    return [{**resource, **fields, "tm_last_message": format_ts(row.get("tm_last_message"))}
            for row, resource, (fields,) in zip(chats, resources, seen, strict=True)]
