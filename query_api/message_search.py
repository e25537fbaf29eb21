"""The message lists beyond one talk's timeline: the messages of every talk an agent is in
(``GET talk_messages`` without ``chat_id``) and search (``q``), each newest first with the
keyset of :mod:`query_api.pagination`.

Every talk the agent is in: the agent's talks (not deleted) come from its participant rows.
The newest ``n`` messages of them all lie in the ``n`` talks whose newest message (before
the cursor) is newest; and when the agent has ``n`` such talks, none is older than the
oldest of those ``n`` newest messages (they are ``n`` messages already). So the statement
probes each talk's newest message through ``rm_messages_by_chat`` (one index probe per
talk), keeps those ``n`` talks, and reads at most ``n`` messages of each, newest first, down
to that floor at most (an index bound, not a filter). It never reads the customer's other
messages, nor more than a page's worth of any talk.

Search: ``talk_search_vector(customer_id, text) @@ talk_search_query(customer_id, q)``
through the GIN index ``rm_messages_search`` (migration 0010 says how words are folded and
why the customer's id prefixes every lexeme): the index yields the matches of the caller's
customer only, which are then kept to the agent's talks (or the one talk asked), live, and
before the cursor. Deleted messages have no words; an edited one has its current words only.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from query_api.pagination import Cursor
from services.db import Database

Row = dict[str, Any]

# The agent's talks: the ones its list of talks shows (deleted talks are not listed).
_TALKS = """
SELECT p.chat_id FROM rm_participants p JOIN rm_chats c ON c.id = p.chat_id
 WHERE p.owner_id = %(agent)s AND p.customer_id = %(customer)s AND c.tm_delete IS NULL
"""

_BEFORE = " AND (m.tm_create, m.id) < (%(before_tm)s, %(before_id)s)"

_FEED = """
WITH talks AS ({talks}),
newest AS (
    SELECT t.chat_id, l.tm_create, l.id FROM talks t
     CROSS JOIN LATERAL (SELECT m.tm_create, m.id FROM rm_messages m
                          WHERE m.chat_id = t.chat_id{before}
                          ORDER BY m.tm_create DESC, m.id DESC LIMIT 1) l
     ORDER BY l.tm_create DESC, l.id DESC LIMIT %(limit)s),
floor AS (SELECT tm_create, id FROM (
    (SELECT tm_create, id FROM newest ORDER BY tm_create DESC, id DESC
      OFFSET %(limit)s - 1 LIMIT 1)
    UNION ALL SELECT '-infinity'::timestamptz, '00000000-0000-0000-0000-000000000000'::uuid) f
    ORDER BY tm_create DESC, id DESC LIMIT 1)
SELECT m.* FROM newest t
 CROSS JOIN LATERAL (SELECT * FROM rm_messages m
                      WHERE m.chat_id = t.chat_id{before}
                        AND (m.tm_create, m.id) >= (SELECT tm_create, id FROM floor)
                      ORDER BY m.tm_create DESC, m.id DESC LIMIT %(limit)s) m
 ORDER BY m.tm_create DESC, m.id DESC LIMIT %(limit)s
"""

# The matches are found once (MATERIALIZED: one scan of the index, not one per talk of the
# agent, which a nested loop would make), then kept to the agent's talks.
_SEARCH = """
WITH found AS MATERIALIZED (
    SELECT * FROM rm_messages m
     WHERE talk_search_vector(m.customer_id, m.text) @@ talk_search_query(%(customer)s, %(q)s)
       AND m.customer_id = %(customer)s AND m.tm_delete IS NULL{scope}{before})
SELECT m.* FROM found m WHERE true{talks}
 ORDER BY m.tm_create DESC, m.id DESC LIMIT %(limit)s
"""

_IN_TALKS = f" AND m.chat_id IN ({_TALKS})"
_IN_TALK = " AND m.chat_id = %(chat)s"
_IN_THREAD = " AND m.parent_id = %(parent)s"


def _params(customer_id: UUID, agent_id: UUID, cursor: Cursor | None, limit: int,
            **more: Any) -> dict[str, Any]:
    params = {"customer": customer_id, "agent": agent_id, "limit": limit, **more}
    if cursor is not None:
        params.update(before_tm=cursor.tm_create, before_id=cursor.id)
    return params


class MessageSearch:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def feed(self, customer_id: UUID, agent_id: UUID, cursor: Cursor | None,
                   limit: int) -> list[Row]:
        """The messages of every talk the agent is in, newest first."""
        sql = _FEED.format(talks=_TALKS, before=_BEFORE if cursor else "")
        async with self.db.statement("list_messages_of_agent") as conn:
            cur = await conn.execute(sql, _params(customer_id, agent_id, cursor, limit))
            return await cur.fetchall()

    async def search(self, customer_id: UUID, agent_id: UUID, q: str, cursor: Cursor | None,
                     limit: int, *, chat_id: UUID | None = None,
                     parent_id: UUID | None = None) -> list[Row]:
        """The live messages whose text holds every word of ``q`` (as words or prefixes), of
        the talk ``chat_id`` (the caller may read it: checked before) or of every talk the
        agent is in; with ``parent_id``, of that thread only."""
        scope = "" if chat_id is None else _IN_TALK
        if parent_id is not None:
            scope += _IN_THREAD
        sql = _SEARCH.format(scope=scope, before=_BEFORE if cursor else "",
                             talks=_IN_TALKS if chat_id is None else "")
        params = _params(customer_id, agent_id, cursor, limit, q=q, chat=chat_id,
                         parent=parent_id)
        async with self.db.statement("search_messages") as conn:
            # Never a prepared (generic) plan: planned with q's tsquery itself, the GIN index
            # is chosen by how many entries q matches; a generic plan cannot know.
            cur = await conn.execute(sql, params, prepare=False)
            return await cur.fetchall()
