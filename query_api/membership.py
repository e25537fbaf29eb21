"""Who is in a talk, as the gateway asks it (subscribe, typing): the read tables' answer and
whether that answer is final.

The read tables trail the event store by the projection's lag, so "not a participant" may
only mean "not projected yet". Each answer therefore carries whether the projection has
reached the head of the talk's own stream (``chat-<id>``, where its creation, joins and
leaves are) as the store holds it at the time of the query: once it has, the read tables'
answer about that talk is the store's. One statement answers for every talk asked.
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
  LEFT JOIN projector_checkpoints cp ON cp.name = 'read_model'
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
    def __init__(self, db: Database) -> None:
        self.db = db

    async def standings(self, customer_id: UUID, agent_id: UUID,
                        chat_ids: list[UUID]) -> dict[UUID, Standing]:
        """The agent's standing in each talk, in one statement."""
        async with self.db.statement("gateway_standings") as conn:
            cur = await conn.execute(_STANDING, {
                "agent": agent_id, "ids": chat_ids,
                "streams": [chat_stream(c) for c in chat_ids]})
            rows = await cur.fetchall()
        return {row["chat_id"]: Standing(
            chat_id=row["chat_id"],
            found=row["customer_id"] == customer_id,
            member=row["customer_id"] == customer_id and row["member"],
            settled=row["settled"]) for row in rows}

    async def audience(self, customer_id: UUID, chat_id: UUID) -> list[UUID]:
        """The talk's participants (agent ids); empty if it is not the customer's."""
        async with self.db.statement("gateway_audience") as conn:
            cur = await conn.execute(_AUDIENCE, (chat_id, customer_id))
            return [row["owner_id"] for row in await cur.fetchall()]
