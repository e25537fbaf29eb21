"""Helpers for tests: awaiting conditions (never bare sleeps), tokens, clients."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from services.auth import mint_token

TEST_SECRET = "test-secret-not-for-production-0123456789"


async def wait_until(predicate: Callable[[], Awaitable[Any]], timeout: float = 10.0,
                     what: str = "condition", interval: float = 0.02) -> Any:
    """Await ``predicate()`` until it returns a truthy value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


def bearer(customer_id: UUID, agent_id: UUID, *, roles: list[str] | None = None,
           secret: str = TEST_SECRET, ttl: int = 3600) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(secret, customer_id, agent_id, ttl, roles)}"}


class Running:
    """A service object's ``run(stop)`` running as a task of the test."""

    def __init__(self, service: Any, name: str) -> None:
        self.service = service
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(service.run(self.stop), name=name)

    async def close(self) -> None:
        """Ask it to stop and wait for it."""
        self.stop.set()
        await asyncio.wait_for(self.task, 15)

    async def kill(self) -> None:
        """Cancel it wherever it is, as a crash would stop it."""
        self.task.cancel()
        try:
            await self.task
        except asyncio.CancelledError:
            pass
