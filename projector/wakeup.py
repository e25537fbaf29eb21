"""Wake-ups: an event set by a NOTIFY listener connection, or directly by code in the same
process (:meth:`Wakeup.poke`), and awaited with a poll interval (a stop event wakes it too).

It is only a hint to read sooner; the readers poll anyway, so a lost notification (or a dead
listener) costs at most one poll interval. A wake-up from within the process costs no round
trip through Postgres: the projector pokes the publisher beside it when it commits a batch,
and that publisher ignores the same batch's NOTIFY (``ignore_notifies``) while the projector
beside it is the active one (every batch is then committed in this process).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import psycopg
import structlog

from services.retry import Backoff, pause
from services.tasks import cancel_and_wait

log = structlog.get_logger("talk.projector")

CHANNEL = "talk_events"


class Wakeup:
    def __init__(self, database_url: str, channel: str = CHANNEL, *,
                 stop: asyncio.Event | None = None,
                 ignore_notifies: Callable[[], bool] | None = None) -> None:
        self._url = database_url
        self._channel = channel
        self._stop = stop
        self._ignore = ignore_notifies
        self.event = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> Wakeup:
        self._tasks = [asyncio.create_task(self._listen(), name="projector-listen")]
        if self._stop is not None:
            self._tasks.append(asyncio.create_task(self._poke_on(self._stop)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)

    async def _poke_on(self, event: asyncio.Event) -> None:
        await event.wait()
        self.poke()

    def poke(self) -> None:
        """Wake the reader now (from within the process)."""
        self.event.set()

    async def _listen(self) -> None:
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {self._channel}")
                    backoff.reset()
                    self.event.set()  # we may have missed some while (re)connecting
                    async for _ in conn.notifies():
                        if self._ignore is None or not self._ignore():
                            self.event.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff.next()
                log.warning("projector.listen_failed", error=str(exc), retry_in=delay)
                await pause(delay)

    async def wait(self, timeout: float) -> None:
        """Until woken (a stop given to the constructor wakes it too) or ``timeout`` passes."""
        if not self.event.is_set():
            try:
                await asyncio.wait_for(self.event.wait(), timeout)
            except TimeoutError:
                pass
        self.event.clear()
