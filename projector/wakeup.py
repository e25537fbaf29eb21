"""NOTIFY as a wake-up: a listener connection that sets an event on each notification.

It is only a hint to read sooner; the projector polls anyway, so a lost notification (or
a dead listener) costs at most one poll interval.
"""

from __future__ import annotations

import asyncio

import psycopg
import structlog

from services.retry import Backoff, pause
from services.tasks import cancel_and_wait

log = structlog.get_logger("talk.projector")

CHANNEL = "talk_events"


class Wakeup:
    def __init__(self, database_url: str, channel: str = CHANNEL) -> None:
        self._url = database_url
        self._channel = channel
        self.event = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Wakeup:
        self._task = asyncio.create_task(self._listen(), name="projector-listen")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await cancel_and_wait(self._task)

    async def _listen(self) -> None:
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {self._channel}")
                    backoff.reset()
                    self.event.set()  # we may have missed some while (re)connecting
                    async for _ in conn.notifies():
                        self.event.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff.next()
                log.warning("projector.listen_failed", error=str(exc), retry_in=delay)
                await pause(delay)

    async def wait(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.event.wait(), timeout)
        except TimeoutError:
            pass
        self.event.clear()
