"""The gateway's limits that keep one client (or one tenant) from taking what others need.

* :class:`TokenBucket`: a socket's budget of membership checks (each ``chat:`` topic it
  subscribes to and each typing signal costs one): :data:`CHECK_BURST` at once, refilled
  at :data:`CHECK_RATE` per second. Beyond it the topic is answered ``rate_limited``.
* :class:`ReplaySlots`: resumes read the stream with a consumer of their own; at most
  ``total`` run at once, at most ``per_customer`` of one customer and ``per_agent`` of one
  agent, so one agent (or tenant) cannot hold every slot: its extra resumes queue behind
  its own, not in front of everyone else's.
* :class:`RecentKeys`: at most one signal per key every ``interval`` seconds (typing), in a
  table that forgets keys once their interval has passed (bounded by what is active).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager

CHECK_BURST = 1_000.0  # membership checks a socket may make at once (a full subscribe)
CHECK_RATE = 50.0  # checks per second, refilled


class TokenBucket:
    __slots__ = ("tokens", "stamp")

    def __init__(self) -> None:
        self.tokens = CHECK_BURST
        self.stamp = time.monotonic()

    def take(self, n: int) -> bool:
        """Spend ``n`` tokens if there are that many (then ``True``)."""
        now = time.monotonic()
        self.tokens = min(CHECK_BURST, self.tokens + (now - self.stamp) * CHECK_RATE)
        self.stamp = now
        if self.tokens < n:
            return False
        self.tokens -= n
        return True

    def retry_after(self, n: int) -> float:
        """Seconds until ``n`` tokens are there."""
        return max(0.0, (n - self.tokens) / CHECK_RATE)


class ReplaySlots:
    def __init__(self, total: int, *, per_customer: int, per_agent: int) -> None:
        self.total = total
        self.per_customer = min(per_customer, total)
        self.per_agent = min(per_agent, self.per_customer)
        self._all = asyncio.Semaphore(total)
        self._by_key: dict[tuple[str, ...], tuple[asyncio.Semaphore, int]] = {}

    @asynccontextmanager
    async def _key(self, key: tuple[str, ...], size: int) -> AsyncIterator[None]:
        sem, users = self._by_key.get(key, (None, 0))
        if sem is None:
            sem = asyncio.Semaphore(size)
        self._by_key[key] = (sem, users + 1)
        try:
            async with sem:
                yield
        finally:
            sem, users = self._by_key[key]
            if users == 1:
                del self._by_key[key]
            else:
                self._by_key[key] = (sem, users - 1)

    @asynccontextmanager
    async def hold(self, customer_id: str, agent_id: str) -> AsyncIterator[None]:
        """One slot, taken in the agent's queue, then the customer's, then the shared one."""
        async with self._key(("agent", customer_id, agent_id), self.per_agent), \
                self._key(("customer", customer_id), self.per_customer), self._all:
            yield


class RecentKeys:
    """Which keys were let through in the last ``interval`` seconds."""

    __slots__ = ("interval", "_at")

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._at: dict[Hashable, float] = {}  # in the order they were let through

    def allow(self, key: Hashable, now: float | None = None) -> bool:
        """Whether ``key`` may pass now (then it is remembered for ``interval``)."""
        now = time.monotonic() if now is None else now
        at = self._at
        while at:  # forget what has expired: the oldest come first
            oldest = next(iter(at))
            if now - at[oldest] < self.interval:
                break
            del at[oldest]
        if key in at:
            return False
        at[key] = now
        return True

    def __len__(self) -> int:
        return len(self._at)
