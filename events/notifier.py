"""The wake-up readers of the store wait for, sent after commit and coalesced.

``poke()`` after an append has committed; one NOTIFY goes out on a connection of its own at
once, and pokes that arrive while it is on its way (one round trip) are folded into the next
one. So a burst of appends costs a handful of NOTIFYs instead of one per transaction (a NOTIFY
inside the append's own transaction would serialise every writer's commit on the server's
notify lock), and a lone append's wake-up waits for nothing: no spacing between NOTIFYs (a
reader busy with a batch folds the wake-ups that arrive meanwhile into one anyway). Readers
poll as well: a wake-up lost to a dropped connection costs at most one poll interval.

With several projector partitions (``partitions`` > 1) the payload names the partitions of
the talks written since the last NOTIFY (``"0,3"``), so only their readers read; an empty
payload wakes every reader (a poke that does not say which talks it wrote).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from uuid import UUID

import psycopg
import structlog

from projector.partitioning import partition_of
from services.retry import Backoff, pause
from services.tasks import cancel_and_wait

log = structlog.get_logger("talk.events")

CHANNEL = "talk_events"


class CommitNotifier:
    def __init__(self, database_url: str, *, partitions: int = 1) -> None:
        self._url = database_url
        self._partitions = partitions
        self._pending = asyncio.Event()
        self._pending_partitions: set[int] = set()
        self._pending_all = False
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="commit-notifier")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    def poke(self, chat_ids: Iterable[UUID] | None = None) -> None:
        """Something committed (to the talks ``chat_ids``; None: unknown): wake the readers
        soon."""
        if self._partitions > 1:
            if chat_ids is None:
                self._pending_all = True
            else:
                self._pending_partitions.update(
                    partition_of(chat_id, self._partitions) for chat_id in chat_ids)
        self._pending.set()

    def _payload(self) -> str:
        """The partitions to wake since the last NOTIFY ('': all), and forget them."""
        parts, wake_all = self._pending_partitions, self._pending_all
        self._pending_partitions, self._pending_all = set(), False
        if wake_all or not parts:
            return ""
        return ",".join(map(str, sorted(parts)))

    async def _run(self) -> None:
        backoff = Backoff(0.2, 2.0)
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._url, autocommit=True, application_name="talk-notifier"
                ) as conn:
                    backoff.reset()
                    while True:
                        await self._pending.wait()
                        self._pending.clear()
                        await conn.execute("SELECT pg_notify(%s, %s)",
                                           (CHANNEL, self._payload()))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the readers poll; retry quietly
                delay = backoff.next()
                log.warning("notifier.failed", error=str(exc), retry_in=delay)
                await pause(delay)
