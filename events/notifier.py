"""The wake-up readers of the store wait for, sent after commit and coalesced.

``poke()`` after an append has committed; one NOTIFY goes out on a connection of its own at
once, and pokes that arrive while it is on its way (one round trip) are folded into the next
one. So a burst of appends costs a handful of NOTIFYs instead of one per transaction (a NOTIFY
inside the append's own transaction would serialise every writer's commit on the server's
notify lock), and a lone append's wake-up waits for nothing: no spacing between NOTIFYs (a
reader busy with a batch folds the wake-ups that arrive meanwhile into one anyway). Readers
poll as well: a wake-up lost to a dropped connection costs at most one poll interval.

The payload names the talks written since the last NOTIFY by their partition hash (7 hex
digits each, ``talk_hash``), so a partitioned projector wakes only the readers of their
partitions, whatever its number of partitions (the writer need not know it). An empty
payload wakes every reader: a poke that does not say which talks it wrote, or more talks
than ``MAX_NAMED`` since the last NOTIFY.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from uuid import UUID

import psycopg
import structlog

from projector.partitioning import talk_hash
from services.retry import Backoff, pause
from services.tasks import cancel_and_wait

log = structlog.get_logger("talk.events")

CHANNEL = "talk_events"
MAX_NAMED = 64  # talks named in one payload at most (8 bytes each; the limit is 8,000)


class CommitNotifier:
    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._pending = asyncio.Event()
        self._pending_talks: set[str] = set()
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
        if chat_ids is None:
            self._pending_all = True
        elif not self._pending_all:
            self._pending_talks.update(f"{talk_hash(chat_id):07x}" for chat_id in chat_ids)
            if len(self._pending_talks) > MAX_NAMED:
                self._pending_all = True
        self._pending.set()

    def _payload(self) -> str:
        """The talks written since the last NOTIFY ('': wake everyone), and forget them."""
        talks, wake_all = self._pending_talks, self._pending_all
        self._pending_talks, self._pending_all = set(), False
        if wake_all or not talks:
            return ""
        return ",".join(sorted(talks))

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
