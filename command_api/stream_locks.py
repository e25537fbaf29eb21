"""Commands on one stream take turns within a process.

Optimistic concurrency alone keeps racing commands correct (a loser is decided again on
fresh state), but N commands racing on one stream cost O(N²) reads and appends, as every
round has one winner and everyone else starts over. Queueing the commands of this process
on the stream they change lets each decide once on the state its predecessor committed; the
optimistic check still guards against other processes. A waiting command holds no database
connection, so the queue cannot starve the pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class StreamLocks:
    """One FIFO lock per stream id, kept only while someone holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    @asynccontextmanager
    async def hold(self, stream_id: str | None) -> AsyncIterator[None]:
        """Hold ``stream_id``'s lock (``None``: nothing to hold)."""
        if stream_id is None:
            yield
            return
        lock = self._locks.setdefault(stream_id, asyncio.Lock())
        self._users[stream_id] = self._users.get(stream_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[stream_id] -= 1
            if not self._users[stream_id]:
                del self._users[stream_id]
                del self._locks[stream_id]

    def __len__(self) -> int:
        return len(self._locks)
