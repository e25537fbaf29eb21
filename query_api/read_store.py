"""The read store: every SQL the query API runs, each in a named statement."""

from __future__ import annotations

import functools
from typing import Any
from uuid import UUID

from events.envelope import Checkpoint
from projector.partitioning import partition_expression
from query_api.pagination import Cursor
from services.db import Database

Row = dict[str, Any]

_CHAT = "SELECT * FROM rm_chats WHERE id = %s AND customer_id = %s"
_IS_PARTICIPANT = "SELECT 1 FROM rm_participants WHERE chat_id = %s AND owner_id = %s"
_MEMBERSHIP = (  # params: agent_id, chat_id, customer_id
    "SELECT EXISTS (SELECT 1 FROM rm_participants p"
    "                WHERE p.chat_id = c.id AND p.owner_id = %s) AS caller_is_participant"
    " FROM rm_chats c WHERE c.id = %s AND c.customer_id = %s"
)
_CHAT_AND_MEMBERSHIP = _MEMBERSHIP.replace("SELECT EXISTS", "SELECT c.*, EXISTS", 1)


_LAYOUT = "(SELECT max(partitions) FROM projector_checkpoints WHERE name = 'read_model')"


@functools.cache  # the text for each number of partitions, built once
def _reached_sql(partitions: int) -> str:
    """Whether the projection laid out in ``partitions`` has reached (tx, pos), and the
    layout it has now (``layout``: when it is not ``partitions``, ask again with it)."""
    if partitions == 1:
        return (f"SELECT {_LAYOUT} AS layout, coalesce((SELECT (last_tx, last_pos) >="
                " (%(tx)s::text::xid8, %(pos)s) FROM projector_checkpoints"
                " WHERE name = 'read_model' AND partition = 0), false) AS reached")
    return (
        f"SELECT {_LAYOUT} AS layout, count(*) = %(n)s AND coalesce(bool_and("
        "   (cp.last_tx, cp.last_pos) >= (%(tx)s::text::xid8, %(pos)s)"
        "   OR NOT EXISTS (SELECT 1 FROM events e"
        f"                  WHERE {partition_expression(partitions, 'e')} = cp.partition"
        "                    AND (e.tx_id, e.position) > (cp.last_tx, cp.last_pos)"
        "                    AND (e.tx_id, e.position) <= (%(tx)s::text::xid8, %(pos)s))),"
        "   false) AS reached"
        " FROM projector_checkpoints cp WHERE cp.name = 'read_model' AND cp.partitions = %(n)s")


class ReadStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        # How the projection's checkpoints are laid out (TALK_PROJECTOR_PARTITIONS), as last
        # seen: read from the database, so the query API need not be told.
        self.partitions = 1

    async def chat(self, customer_id: UUID, chat_id: UUID) -> Row | None:
        async with self.db.statement("get_chat") as conn:
            cur = await conn.execute(_CHAT, (chat_id, customer_id))
            return await cur.fetchone()

    async def chat_with_membership(self, customer_id: UUID, chat_id: UUID,
                                   agent_id: UUID) -> Row | None:
        """The customer's talk with ``caller_is_participant`` for ``agent_id``, in one trip."""
        async with self.db.statement("get_chat_with_membership") as conn:
            cur = await conn.execute(_CHAT_AND_MEMBERSHIP, (agent_id, chat_id, customer_id))
            return await cur.fetchone()

    async def is_participant(self, chat_id: UUID, agent_id: UUID) -> bool:
        async with self.db.statement("is_participant") as conn:
            cur = await conn.execute(_IS_PARTICIPANT, (chat_id, agent_id))
            return await cur.fetchone() is not None

    async def participants(self, chat_id: UUID) -> list[Row]:
        async with self.db.statement("list_participants") as conn:
            cur = await conn.execute(
                "SELECT * FROM rm_participants WHERE chat_id = %s ORDER BY tm_joined DESC, id DESC",
                (chat_id,),
            )
            return await cur.fetchall()

    async def message(self, customer_id: UUID, message_id: UUID) -> Row | None:
        async with self.db.statement("get_message") as conn:
            cur = await conn.execute(
                "SELECT * FROM rm_messages WHERE id = %s AND customer_id = %s",
                (message_id, customer_id),
            )
            return await cur.fetchone()

    async def readable_messages(self, customer_id: UUID, agent_id: UUID, chat_id: UUID,
                                parent_id: UUID | None, cursor: Cursor | None,
                                limit: int) -> tuple[str, list[Row]]:
        """A page of a talk's (or a thread's) messages and the caller's access to the talk,
        in one round trip: ``("missing", [])`` (not the customer's talk), ``("forbidden",
        [])`` (``agent_id`` is no participant; the page is not read) or ``("ok", rows)``."""
        page = "WHERE c.caller_is_participant AND m.chat_id = %s"
        params: list[Any] = [agent_id, chat_id, customer_id, chat_id]
        if parent_id is not None:
            page += " AND m.parent_id = %s"
            params.append(parent_id)
        if cursor:
            page += " AND (m.tm_create, m.id) < (%s, %s)"
            params += [cursor.tm_create, cursor.id]
        params.append(limit)
        sql = (f"WITH c AS ({_MEMBERSHIP}) SELECT c.caller_is_participant, m.* FROM c"
               " LEFT JOIN LATERAL (SELECT m.* FROM rm_messages m"
               f" {page} ORDER BY m.tm_create DESC, m.id DESC LIMIT %s) m ON true")
        async with self.db.statement("list_messages") as conn:
            cur = await conn.execute(sql, params)
            rows = await cur.fetchall()
        if not rows:
            return "missing", []
        if not rows[0]["caller_is_participant"]:
            return "forbidden", []
        return "ok", [] if rows[0]["id"] is None else rows

    async def projection_reached(self, target: Checkpoint) -> bool:
        """Whether the read tables include every event up to ``target`` in the global order
        (each partition applies its events in that order, so its checkpoint says it: a
        partition is there when its checkpoint is, or when none of its events lies between
        the two — an index lookup on the partition's index)."""
        params = {"tx": str(target.tx_id), "pos": target.position}
        async with self.db.statement("projection_reached") as conn:
            for _ in range(2):  # once more if the layout is not the one last seen
                cur = await conn.execute(_reached_sql(self.partitions),
                                         {**params, "n": self.partitions})
                row = await cur.fetchone()
                if row is None or row["layout"] in (None, self.partitions):
                    break
                self.partitions = row["layout"]
            return bool(row and row["reached"])

    async def event_at(self, position: int) -> Checkpoint | None:
        """Where the committed event at ``position`` stands in the global order, if any."""
        async with self.db.statement("event_at_position") as conn:
            cur = await conn.execute(
                "SELECT tx_id::text::bigint AS tx_id FROM events WHERE position = %s",
                (position,))
            row = await cur.fetchone()
            return Checkpoint(row["tx_id"], position) if row else None

    async def history_reaches(self, target: Checkpoint) -> bool:
        """Whether a committed event stands at or after ``target`` in the global order; if
        none does, ``target`` is beyond the store's head (no command answered it)."""
        async with self.db.statement("history_reaches") as conn:
            cur = await conn.execute(
                "SELECT EXISTS (SELECT 1 FROM events"
                "               WHERE (tx_id, position) >= (%s::text::xid8, %s)) AS reaches",
                (str(target.tx_id), target.position),
            )
            row = await cur.fetchone()
            return bool(row and row["reaches"])
