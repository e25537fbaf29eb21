"""Wake-ups: an event set by a NOTIFY listener connection, or directly by code in the same
process (:meth:`Wakeup.poke`), and awaited with a poll interval (a stop event wakes it too).

It is only a hint to read sooner; the readers poll anyway, so a lost notification (or a dead
listener) costs at most one poll interval. A wake-up from within the process costs no round
trip through Postgres: the projector pokes the publisher beside it when it commits a batch,
and that publisher ignores the same batch's NOTIFY (``ignore_notifies``) while the projector
beside it is the active one (every batch is then committed in this process).

One :class:`Listener` (one LISTEN connection) can wake many :class:`Wakeup` s: the partitions
of a partitioned projector share one per process. A wake-up for ``partition`` p of
``partitions`` ignores a notification whose payload names only talks of other partitions
(by their hash, events/notifier.py); an empty payload wakes every one.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

import psycopg
import structlog

from services.retry import Backoff, pause
from services.tasks import cancel_and_wait

log = structlog.get_logger("talk.listen")

CHANNEL = "talk_events"


@functools.lru_cache(maxsize=4)
def _talk_hashes(payload: str) -> tuple[int, ...]:
    """A payload's talk hashes, parsed once for all the partitions it is handed to."""
    return tuple(int(h, 16) for h in payload.split(","))


class Listener:
    """One LISTEN connection on ``channel``; each notification is handed to every subscribed
    wake-up (and all of them are woken after a (re)connect: some may have been missed)."""

    def __init__(self, database_url: str, channel: str = CHANNEL) -> None:
        self._url = database_url
        self._channel = channel
        self._subscribers: set[Wakeup] = set()
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Listener:
        self._task = asyncio.create_task(self._listen(), name=f"listen-{self._channel}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await cancel_and_wait(self._task)

    def subscribe(self, wakeup: Wakeup) -> None:
        self._subscribers.add(wakeup)

    def unsubscribe(self, wakeup: Wakeup) -> None:
        self._subscribers.discard(wakeup)

    async def _listen(self) -> None:
        backoff = Backoff(0.2, 5.0)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {self._channel}")
                    backoff.reset()
                    for wakeup in list(self._subscribers):  # some may have been missed
                        wakeup.poke()
                    async for notify in conn.notifies():
                        for wakeup in list(self._subscribers):
                            wakeup.notified(notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = backoff.next()
                log.warning("listen.failed", channel=self._channel, error=str(exc),
                            retry_in=delay)
                await pause(delay)


class Wakeup:
    """``database_url`` and ``channel``: listen on a connection of its own; or ``listener``:
    be woken by a shared one."""

    def __init__(self, database_url: str | None = None, channel: str = CHANNEL, *,
                 stop: asyncio.Event | None = None,
                 ignore_notifies: Callable[[], bool] | None = None,
                 listener: Listener | None = None, partition: int | None = None,
                 partitions: int = 1) -> None:
        if listener is None and database_url is None:
            raise ValueError("a Wakeup needs a database_url or a listener")
        self._own = listener is None
        self._listener = listener or Listener(database_url or "", channel)
        self._stop = stop
        self._ignore = ignore_notifies
        # which partition's talks wake it (None: any notification)
        self._partition = None if partition is None or partitions == 1 else partition
        self._partitions = partitions
        self.event = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> Wakeup:
        if self._own:
            await self._listener.__aenter__()
        self._listener.subscribe(self)
        if self._stop is not None:
            self._tasks.append(asyncio.create_task(self._poke_on(self._stop)))
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._listener.unsubscribe(self)
        for task in self._tasks:
            await cancel_and_wait(task)
        if self._own:
            await self._listener.__aexit__(*exc)

    async def _poke_on(self, event: asyncio.Event) -> None:
        await event.wait()
        self.poke()

    def poke(self) -> None:
        """Wake the reader now (from within the process)."""
        self.event.set()

    def notified(self, payload: str) -> None:
        """A notification arrived with ``payload`` (talk hashes, or '' for all)."""
        if self._partition is not None and payload and not any(
                h % self._partitions == self._partition for h in _talk_hashes(payload)):
            return
        if self._ignore is None or not self._ignore():
            self.event.set()

    async def wait(self, timeout: float) -> None:
        """Until woken (a stop given to the constructor wakes it too) or ``timeout`` passes."""
        if not self.event.is_set():
            try:
                await asyncio.wait_for(self.event.wait(), timeout)
            except TimeoutError:
                pass
        self.event.clear()
