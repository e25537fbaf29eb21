"""May this agent follow these talks? The read tables' answer, without refusing a caller
for the projection's lag.

A subscribe (or a typing signal) often comes right after the command that created the talk
or added the caller, before the projector has applied it. So the read tables' answer is
taken only once the projection has reached the talk's head (its latest join, leave or
change) as the store held it at the time of the check
(:class:`query_api.membership.Standing`), which is almost always at once (messages live in
streams of their own): until then the gateway waits for the projector's
next batches (its ``talk_projected`` notifications, with a short poll besides) and asks
again, for at most ``lag_wait`` seconds; then the talk is answered ``unavailable`` (try
again), never ``forbidden`` for lag. A participant who was removed is refused: the
projection has reached the leave, and the answer is final.

One statement answers for every talk of a frame; the re-checks while waiting ask only
about the talks still in doubt.
"""

from __future__ import annotations

import time
from uuid import UUID

import psycopg
import structlog

from query_api.consistency import ProjectionWatcher
from query_api.membership import MembershipStore

log = structlog.get_logger("talk.gateway")

POLL = 0.05  # seconds between re-checks when no notification arrives

ALLOWED = "ok"


class Membership:
    def __init__(self, store: MembershipStore, watcher: ProjectionWatcher,
                 lag_wait: float) -> None:
        self.store = store
        self.watcher = watcher
        self.lag_wait = lag_wait

    async def check(self, customer_id: UUID, agent_id: UUID,
                    chat_ids: list[UUID]) -> dict[UUID, str]:
        """For each talk: :data:`ALLOWED`, ``not_found`` (not the customer's, or none),
        ``forbidden`` (not a participant), or ``unavailable`` (the read tables could not be
        asked, or had not caught up within ``lag_wait``)."""
        verdicts: dict[UUID, str] = {}
        pending = list(dict.fromkeys(chat_ids))
        deadline = time.monotonic() + self.lag_wait
        while pending:
            try:
                standings = await self.store.standings(customer_id, agent_id, pending)
            except (psycopg.Error, OSError, TimeoutError) as exc:
                log.warning("gateway.membership_unavailable",
                            error=f"{type(exc).__name__}: {exc}")
                verdicts.update(dict.fromkeys(pending, "unavailable"))
                break
            waiting = []
            for chat_id in pending:
                standing = standings[chat_id]
                if not standing.settled:
                    waiting.append(chat_id)  # a join or a leave is on its way
                elif standing.member:
                    verdicts[chat_id] = ALLOWED
                else:
                    verdicts[chat_id] = "forbidden" if standing.found else "not_found"
            pending = waiting
            left = deadline - time.monotonic()
            if pending and left <= 0:
                verdicts.update(dict.fromkeys(pending, "unavailable"))
                break
            if pending:
                await self.watcher.wait_changed(min(left, POLL))
        return verdicts



DETAILS = {
    "not_found": "no such talk",
    "forbidden": "only participants of this talk may do this",
    "unavailable": "the talk could not be checked (the read tables are unreachable or "
                   "behind); try again",
}
