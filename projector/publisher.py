"""The publisher: publishes the outbox to RabbitMQ in order, with publisher confirms, and
deletes a row only once the broker has confirmed it.

One active instance (a session-level advisory lock on its Postgres connection, as for the
projector) reads the outbox in ``seq`` order, a batch at a time, and publishes the batch
pipelined on one channel (:mod:`projector.ordered_publish`): the publishes go out in order
and their confirms are awaited together. The confirmed prefix of the batch is deleted; the
first failure ends the broker session, and the next one (after a back-off, on a fresh
connection) starts again from the first row still in the outbox. So a crash or an outage
never loses an event; it may repeat some, which consumers drop by ``message_id``. Because
what reaches the broker of a batch is a prefix and a fresh session republishes everything
after the confirmed part, the first copy of each event a consumer sees is in per-talk order.

While RabbitMQ is away nothing here blocks the projector: it keeps committing outbox rows,
and the publisher catches up when the broker is back. Beside a projector in the same process
(:meth:`Publisher.follow`), the projector wakes it directly when it commits a batch; otherwise
(the active projector is another process's) it wakes on the projector's ``talk_projected``
NOTIFY. It polls anyway. The outbox's lag is counted by a query only while a backlog is
published (at most every ``LAG_INTERVAL``): a short batch, all confirmed, leaves none.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import aio_pika
import psycopg
import structlog
from aio_pika.abc import AbstractConnection, AbstractExchange
from prometheus_client import Counter, Gauge

from projector.ordered_publish import publish_in_order
from projector.published import CONTENT_TYPE
from projector.wakeup import Listener, Wakeup
from services import amqp
from services.db import connect_dedicated
from services.leader_lock import acquire_leader_lock
from services.retry import Backoff, pause
from services.settings import Settings

if TYPE_CHECKING:
    from projector.runner import Projector

log = structlog.get_logger("talk.publisher")

PUBLISHER_LOCK = 0x74616C6B_7075626C  # "talkpubl"
PROJECTED_CHANNEL = "talk_projected"  # the projector NOTIFYs it after each batch
RETRY_FIRST, RETRY_CAP = 0.2, 5.0  # seconds before reconnecting after a lost connection
FAILED_RETRY_CAP = 30.0  # after an unexpected failure
LAG_INTERVAL = 1.0  # seconds between lag counts while publishing a backlog

EVENTS_PUBLISHED = Counter("talk_events_published_total",
                           "Events published to RabbitMQ and confirmed by the broker.")
PUBLISH_FAILURES = Counter(
    "talk_publish_failures_total",
    "Broker failures while publishing (a failed connect, a lost connection, a publish not "
    "confirmed); each one is retried after a back-off.",
)
PUBLISH_LAG_EVENTS = Gauge("talk_publish_lag_events",
                           "Events in the outbox not yet confirmed by the broker.")
PUBLISHER_ACTIVE = Gauge("talk_publisher_active",
                         "Publisher locks this process holds (1 or 0 with one partition).")

# Each partition's rows (one partition: 0), on the (partition, seq) index.
_READ = ("SELECT seq, message_id, routing_key, body::text AS body FROM outbox"
         " WHERE partition = %s ORDER BY seq LIMIT %s")
_DELETE = "DELETE FROM outbox WHERE partition = %s AND seq <= %s"
# Not exact: ``seq`` is shared by the partitions (and a rolled-back batch leaves a gap), so
# this is an upper bound; two index lookups.
_LAG = ("SELECT coalesce(max(seq) - min(seq) + 1, 0) AS n FROM outbox WHERE partition = %s")


class Publisher:
    """Publishes the outbox to RabbitMQ; runs until ``stop`` is set."""

    uses_broker = True

    def __init__(self, settings: Settings, *, lock_key: int = PUBLISHER_LOCK,
                 connection_name: str = "talk-publisher", partition: int = 0,
                 listener: Listener | None = None) -> None:
        self.settings = settings
        self.partition = partition  # whose outbox rows it publishes
        self._listener = listener  # a LISTEN connection shared with others, if given
        self.url = settings.require_database_url()
        if self.uses_broker:
            amqp.require_amqp_url(settings)
        self.lock_key = lock_key
        self.connection_name = connection_name
        self.batch_size = settings.projector_batch_size
        self.active = asyncio.Event()  # set while holding the lock
        self.connected = asyncio.Event()  # set while a broker session is up
        self.published = 0  # events confirmed by this instance (tests await progress on it)
        self.lag: int | None = None  # outbox rows not yet confirmed, as last measured
        self.broker_error: str | None = None  # the last broker failure, until a session is up
        self._wakeup: Wakeup | None = None
        self._beside: Projector | None = None  # the projector in this process, if followed
        self._lag_due = 0.0

    def follow(self, projector: Projector) -> None:
        """Be woken by ``projector`` (in this process) when it commits a batch, instead of by
        its NOTIFY while it is the active projector."""
        self._beside = projector
        projector.on_commit.append(self.poke)

    def poke(self) -> None:
        """The outbox has new rows: publish them now."""
        if self._wakeup is not None:
            self._wakeup.poke()

    def _beside_is_active(self) -> bool:
        return self._beside is not None and self._beside.active.is_set()

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff(RETRY_FIRST, RETRY_CAP)
        wakeup = Wakeup(self.url, PROJECTED_CHANNEL, stop=stop,
                        ignore_notifies=self._beside_is_active, listener=self._listener)
        self._wakeup = wakeup
        async with wakeup:
            while not stop.is_set():
                try:
                    await self._run_locked(stop, wakeup)
                    backoff.reset()
                except psycopg.Error as exc:
                    delay = backoff.next()
                    log.warning("publisher.database_lost", error=str(exc), retry_in=delay)
                    await pause(delay, stop)
                except asyncio.CancelledError:
                    raise
                except Exception:  # never die quietly: the outbox waits for us
                    delay = backoff.next(cap=FAILED_RETRY_CAP)
                    log.exception("publisher.failed", retry_in=delay)
                    await pause(delay, stop)
                finally:
                    self._set_active(False)

    async def check_broker(self) -> None:
        """Readiness: the active instance has a broker session (a standby needs none)."""
        if self.active.is_set() and not self.connected.is_set():
            raise ConnectionError("RabbitMQ is not connected"
                                  + (f": {self.broker_error}" if self.broker_error else ""))

    def check_lag(self, limit: int) -> None:
        """Readiness: the active instance's outbox holds at most ``limit`` unconfirmed rows
        (0: no limit)."""
        if limit and self.active.is_set() and self.lag is not None and self.lag > limit:
            raise RuntimeError(f"publish lag: {self.lag} events not yet confirmed by the "
                               f"broker (limit {limit}, TALK_PUBLISH_LAG_LIMIT)")

    def _set_active(self, active: bool) -> None:
        # A count: a process holding several partitions has one instance active per partition.
        if active and not self.active.is_set():
            PUBLISHER_ACTIVE.inc()
            self.active.set()
        elif not active and self.active.is_set():
            PUBLISHER_ACTIVE.dec()
            self.active.clear()

    async def _connect(self) -> psycopg.AsyncConnection:
        return await connect_dedicated(self.settings, self.connection_name)

    async def _run_locked(self, stop: asyncio.Event, wakeup: Wakeup) -> None:
        async with await self._connect() as db:
            if not await self._acquire_lock(db, stop):
                return
            self._set_active(True)
            log.info("publisher.active")
            await self._update_lag(db)

            async def session(connection: AbstractConnection) -> None:
                await self._session(db, connection, stop, wakeup)

            async def failed(exc: BaseException) -> None:
                PUBLISH_FAILURES.inc()
                self.broker_error = f"{type(exc).__name__}: {exc}"[:200]
                await self._update_lag(db)

            await amqp.run_connected(self.settings, self.connection_name, stop, session,
                                     on_failure=failed)

    async def _acquire_lock(self, db: psycopg.AsyncConnection, stop: asyncio.Event) -> bool:
        return await acquire_leader_lock(
            db, self.lock_key, stop, poll_interval=self.settings.projector_poll_interval,
            log=log, event="publisher.standby")

    async def _session(self, db: psycopg.AsyncConnection, connection: AbstractConnection,
                       stop: asyncio.Event, wakeup: Wakeup) -> None:
        closed = asyncio.Event()

        def on_close(*_: object) -> None:
            closed.set()
            wakeup.poke()

        connection.close_callbacks.add(on_close)
        channel = await connection.channel(publisher_confirms=True)
        await amqp.ensure_topology(connection, self.settings)
        exchange = await amqp.declare_exchange(channel, self.settings)
        self.broker_error = None
        self.connected.set()
        try:
            while not stop.is_set():
                if closed.is_set():
                    raise ConnectionError("the broker connection closed")
                if await self.publish_batch(db, exchange, stop) < self.batch_size:
                    await wakeup.wait(self.settings.projector_poll_interval)
        finally:
            self.connected.clear()

    async def publish_batch(self, db: psycopg.AsyncConnection, exchange: AbstractExchange,
                            stop: asyncio.Event | None = None) -> int:
        """Publish the first rows of the outbox and delete the confirmed prefix; returns how
        many rows were read. Raises the first failure after deleting what was confirmed; on
        ``stop`` it keeps what was confirmed so far and leaves the rest to the next run."""
        cur = await db.execute(_READ, (self.partition, self.batch_size))
        rows = await cur.fetchall()
        if not rows:
            PUBLISH_LAG_EVENTS.set(0)
            self.lag = 0
            return 0
        confirmed, failure = await publish_in_order(
            exchange, [(self._message(row), row["routing_key"]) for row in rows],
            stall_timeout=self.settings.amqp_timeout, stop=stop or asyncio.Event())
        if confirmed:
            await db.execute(_DELETE, (self.partition, rows[confirmed - 1]["seq"]))
            EVENTS_PUBLISHED.inc(confirmed)
            self.published += confirmed
        if failure is not None:
            await self._update_lag(db)
            raise failure
        if confirmed == len(rows) < self.batch_size:
            # All the outbox held is confirmed: no lag, and no query to count it.
            PUBLISH_LAG_EVENTS.set(0)
            self.lag = 0
        elif time.monotonic() >= self._lag_due:
            await self._update_lag(db)
        return len(rows)

    @staticmethod
    def _message(row: dict[str, Any]) -> aio_pika.Message:
        return aio_pika.Message(
            row["body"].encode(),
            message_id=str(row["message_id"]),
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )

    async def _update_lag(self, db: psycopg.AsyncConnection) -> None:
        cur = await db.execute(_LAG, (self.partition,))
        self.lag = (await cur.fetchone())["n"]
        PUBLISH_LAG_EVENTS.set(self.lag)
        self._lag_due = time.monotonic() + LAG_INTERVAL
