"""Leader election by a session-level Postgres advisory lock (the projector and the publisher).

The instance whose connection holds the lock is the active one; the others poll for it (a
little jitter keeps standbys from asking in step) and the first to ask after the holder's
connection is gone takes over. The lock lives and dies with the connection: whoever loses
its connection has lost the lock, and starts again with a fresh connection and a fresh try.
"""

from __future__ import annotations

import asyncio
from typing import Any

import psycopg

from services.retry import Backoff, pause

MAX_POLL_INTERVAL = 0.5  # seconds between two tries of a standby, at most


async def acquire_leader_lock(conn: psycopg.AsyncConnection, key: int, stop: asyncio.Event, *,
                              poll_interval: float, log: Any, event: str,
                              **fields: object) -> bool:
    """Take the advisory lock ``key`` on ``conn``, trying until it is free; False if ``stop``
    was set first. Logs ``event`` (e.g. ``projector.standby``) with ``fields`` once while
    it waits."""
    interval = min(MAX_POLL_INTERVAL, poll_interval)
    retry = Backoff(interval, interval, factor=1.0, jitter=0.2)
    waiting_logged = False
    while not stop.is_set():
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (key,))
        row = await cur.fetchone()
        if (row["ok"] if isinstance(row, dict) else row[0]):
            return True
        if not waiting_logged:
            log.info(event, **fields)
            waiting_logged = True
        await pause(retry.next(), stop)
    return False
