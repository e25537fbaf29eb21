"""Who is in a talk, as the gateway asks it (subscribe, typing): the read tables' answer and
whether that answer is final.

The read tables trail the event store by the projection's lag, so "not a participant" may
only mean "not projected yet". Each answer therefore carries whether the projection has
reached the head of the talk's own stream (``chat-<id>``, where its creation, joins and
leaves are) as the store holds it at the time of the query: once it has, the read tables'
answer about that talk is the store's. One statement answers for every talk asked.

On a hot standby (``TALK_READ_DATABASE_URL``) the store "as it holds it" is the standby's,
which may not have replayed a join or a creation the primary has: there, an answer that would
refuse (not a participant, no such talk) is asked again with the talks' heads read on the
primary, so it is final only once the standby's projection has reached the primary's head.
An answer that allows stays a single statement on the standby.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from events.catalogue import chat_stream
from services.db import Database

_STANDING = """
SELECT t.id AS chat_id,
       c.customer_id,
       EXISTS (SELECT 1 FROM rm_participants p
                WHERE p.chat_id = t.id AND p.owner_id = %(agent)s) AS member,
       h.position IS NULL OR coalesce((cp.last_tx, cp.last_pos) >= (h.tx_id, h.position), false)
           AS settled
  FROM unnest(%(ids)s::uuid[], %(streams)s::text[]) AS t(id, stream)
  LEFT JOIN rm_chats c ON c.id = t.id
  LEFT JOIN LATERAL (SELECT e.tx_id, e.position FROM events e
                      WHERE e.stream_id = t.stream ORDER BY e.version DESC LIMIT 1) h ON true
  LEFT JOIN projector_checkpoints cp
         ON cp.name = 'read_model' AND cp.partition = talk_partition(t.id::text, cp.partitions)
"""

# The same, against heads read on the primary (``_HEADS``) rather than the store's own.
_STANDING_AT = """
SELECT t.id AS chat_id,
       c.customer_id,
       EXISTS (SELECT 1 FROM rm_participants p
                WHERE p.chat_id = t.id AND p.owner_id = %(agent)s) AS member,
       t.head_pos IS NULL OR coalesce((cp.last_tx, cp.last_pos) >= (t.head_tx, t.head_pos), false)
           AS settled
  FROM unnest(%(ids)s::uuid[], %(head_tx)s::text[]::xid8[], %(head_pos)s::bigint[])
       AS t(id, head_tx, head_pos)
  LEFT JOIN rm_chats c ON c.id = t.id
  LEFT JOIN projector_checkpoints cp
         ON cp.name = 'read_model' AND cp.partition = talk_partition(t.id::text, cp.partitions)
"""

_HEADS = """
SELECT t.id AS chat_id, h.tx_id::text AS head_tx, h.position AS head_pos
  FROM unnest(%(ids)s::uuid[], %(streams)s::text[]) AS t(id, stream)
  LEFT JOIN LATERAL (SELECT e.tx_id, e.position FROM events e
                      WHERE e.stream_id = t.stream ORDER BY e.version DESC LIMIT 1) h ON true
"""

_AUDIENCE = "SELECT owner_id FROM rm_participants WHERE chat_id = %s AND customer_id = %s"


@dataclass(frozen=True, slots=True)
class Standing:
    """An agent's standing in one talk. ``found``: the talk is the customer's; ``member``:
    the agent is a participant; ``settled``: the projection has reached the talk's head, so
    the two are final (until the next command on the talk)."""

    chat_id: UUID
    found: bool
    member: bool
    settled: bool


class MembershipStore:
    """``db``: where the read tables are read (a standby, or the primary); ``primary``: the
    primary, when ``db`` is a standby of it (None: ``db`` is the primary)."""

    def __init__(self, db: Database, primary: Database | None = None) -> None:
        self.db = db
        self.primary = primary if primary is not db else None

    async def standings(self, customer_id: UUID, agent_id: UUID,
                        chat_ids: list[UUID]) -> dict[UUID, Standing]:
        """The agent's standing in each talk, in one statement (on a standby, a refusal is
        checked against the primary's heads)."""
        async with self.db.statement("gateway_standings") as conn:
            cur = await conn.execute(_STANDING, {
                "agent": agent_id, "ids": chat_ids,
                "streams": [chat_stream(c) for c in chat_ids]})
            found = _standings(customer_id, await cur.fetchall())
        doubtful = [c for c, s in found.items() if s.settled and not s.member]
        if self.primary is not None and doubtful:
            found.update(await self._standings_at_primary_heads(customer_id, agent_id, doubtful))
        return found

    async def _standings_at_primary_heads(self, customer_id: UUID, agent_id: UUID,
                                          chat_ids: list[UUID]) -> dict[UUID, Standing]:
        assert self.primary is not None
        async with self.primary.statement("gateway_heads") as conn:
            cur = await conn.execute(_HEADS, {
                "ids": chat_ids, "streams": [chat_stream(c) for c in chat_ids]})
            heads = await cur.fetchall()
        async with self.db.statement("gateway_standings_at") as conn:
            cur = await conn.execute(_STANDING_AT, {
                "agent": agent_id, "ids": [h["chat_id"] for h in heads],
                "head_tx": [h["head_tx"] for h in heads],
                "head_pos": [h["head_pos"] for h in heads]})
            return _standings(customer_id, await cur.fetchall())

    async def audience(self, customer_id: UUID, chat_id: UUID) -> list[UUID]:
        """The talk's participants (agent ids); empty if it is not the customer's."""
        async with self.db.statement("gateway_audience") as conn:
            cur = await conn.execute(_AUDIENCE, (chat_id, customer_id))
            return [row["owner_id"] for row in await cur.fetchall()]


def _standings(customer_id: UUID, rows: list[dict]) -> dict[UUID, Standing]:
    return {row["chat_id"]: Standing(
        chat_id=row["chat_id"],
        found=row["customer_id"] == customer_id,
        member=row["customer_id"] == customer_id and row["member"],
        settled=row["settled"]) for row in rows}
