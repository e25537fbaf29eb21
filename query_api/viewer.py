"""A talk as one agent sees it: ``unread_count``, ``mention_count``, ``last_message`` and
``tm_last_message`` (the list and the get of talks add these to the Talk resource).

unread = the talk's normal messages - those up to the agent's marker (``read_n``) - the
deleted ones after the marker. The agent's own messages are never after its marker (posting
moves it), so they never count. Mentions are counted among the live messages after the marker
that name the agent. Both subqueries walk partial indexes over the deleted and the mentioning
messages after the marker only: what a talk costs here does not grow with its size.

The fields are columns of the statement that reads the talks (:func:`viewer_columns`), so a
page of talks is one round trip (query_api/talk_list.py). The columns come as the API writes
them (ids as text, timestamps in the API's format: :func:`api_ts`) in the order of the
resource's fields, so a resource is a ``zip`` of names and values: Python makes no UUID or
datetime only to print it again (most of a page's CPU before). ``message_columns`` is
``message_resource`` (query_api/resources.py) in SQL; the two must say the same. (Each talk
as one ``json_build_object`` instead cost Postgres ~0.35 ms more per page of 50 for ~0.05 ms
less in the query API: bench.api's talks part, and bench/RESULTS.md.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from psycopg.rows import tuple_row

from services.db import Database
from services.timefmt import format_ts

# message_resource's fields, in its order.
MESSAGE_FIELDS = ("id", "customer_id", "owner_type", "owner_id", "chat_id", "parent_id", "type",
                  "text", "medias", "metadata", "mentions", "reply_count", "tm_last_reply",
                  "tm_create", "tm_update", "tm_delete")


def api_ts(expr: str) -> str:
    """SQL: the timestamptz ``expr`` as services.timefmt.format_ts writes it (UTC
    ``YYYY-MM-DD HH:MM:SS.ffffff``; ``""`` when unset)."""
    return f"coalesce(to_char({expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), '')"


def message_columns(m: str) -> list[str]:
    """SQL: the values of ``message_resource`` of the ``rm_messages`` row ``m``, in the order
    of :data:`MESSAGE_FIELDS` (the first is NULL when there is no such row)."""
    return [f"{m}.id::text", f"{m}.customer_id::text", f"{m}.owner_type", f"{m}.owner_id::text",
            f"{m}.chat_id::text", f"coalesce({m}.parent_id::text, '')", f"{m}.type",
            f"{m}.text", f"{m}.medias", f"jsonb_build_object('reactions', {m}.reactions)",
            f"coalesce({m}.mentions, '[]'::jsonb)", f"coalesce({m}.reply_count, 0)",
            api_ts(f"{m}.tm_last_reply"), api_ts(f"{m}.tm_create"), api_ts(f"{m}.tm_update"),
            api_ts(f"{m}.tm_delete")]


def viewer_columns(chat: str, participant: str, last: str) -> str:
    """SQL: the select list of the viewer's fields (:func:`viewer_fields` reads them), over
    the relations named ``chat`` (its ``id``, ``normal_count``), ``participant`` (the agent's
    row: ``read_n``, ``owner_id``; NULLs when it has none: no counts) and ``last`` (the
    newest message, joined ``LEFT``)."""
    c, p = chat, participant
    return ", ".join([
        f"""greatest(0, {c}.normal_count - {p}.read_n - (
             SELECT count(*) FROM rm_messages d
              WHERE d.chat_id = {c}.id AND d.tm_delete IS NOT NULL AND d.type = 'normal'
                AND d.n > {p}.read_n))""",
        f"""(SELECT count(*) FROM rm_messages m
              WHERE m.chat_id = {c}.id AND m.mentions <> '[]'::jsonb AND m.tm_delete IS NULL
                AND m.n > {p}.read_n AND m.mentions @> jsonb_build_array({p}.owner_id::text))""",
        *message_columns(last)])


VIEWER_WIDTH = 2 + len(MESSAGE_FIELDS)  # the values viewer_columns selects


def viewer_fields(values: Sequence[Any]) -> dict[str, Any]:
    """``unread_count``, ``mention_count`` and ``last_message`` from the values selected by
    :func:`viewer_columns`."""
    return {"unread_count": values[0], "mention_count": values[1],
            "last_message": None if values[2] is None else dict(zip(MESSAGE_FIELDS, values[2:],
                                                                    strict=True))}


_VIEW = f"""
SELECT {viewer_columns("c", "p", "lm")}
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
    return [{**resource, **viewer_fields(values),
             "tm_last_message": format_ts(row.get("tm_last_message"))}
            for row, resource, values in zip(chats, resources, seen, strict=True)]
