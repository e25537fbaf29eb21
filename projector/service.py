"""``talk projector``: the projector loop plus a small HTTP app for /livez, /readyz, /metrics."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from projector.inprocess_publisher import InProcessPublisher
from projector.outbox import Outbox
from projector.partition_share import (
    PARTITIONS_CONFIGURED,
    PartitionShare,
    PublisherFactory,
    publisher_lock_key,
)
from projector.publisher import Publisher
from projector.replay import GC_THRESHOLDS
from projector.runner import Projector
from projector.wakeup import Listener
from services.db import Database, make_pool
from services.event_loop import run_main
from services.gateway.inprocess_feed import InProcessFeed
from services.http.app import create_base_app, install_stop_signals, serve_until
from services.http.health import READINESS_CHECKS
from services.migrate import schema_check
from services.settings import Settings


def build_projector(settings: Settings, *, with_outbox: bool | None = None) -> Projector:
    """The projector with everything it feeds: with ``amqp_url`` set (or ``with_outbox``), it
    also writes the outbox that a publisher publishes."""
    if not (settings.amqp_url if with_outbox is None else with_outbox):
        return Projector(settings)
    outbox = Outbox()
    return Projector(settings, before_batch=outbox.before_batch, after_batch=outbox.after_batch)


@dataclass
class OnePartition:
    """What one process runs with one partition: the projector (the active one, or a
    standby) and, when it publishes, the publisher beside it."""

    projector: Projector
    publisher: Publisher | None = None

    @property
    def publishes(self) -> bool:
        return self.publisher is not None

    @property
    def uses_broker(self) -> bool:
        return self.publisher is not None and self.publisher.uses_broker

    async def check(self) -> None:
        await self.projector.check_healthy()

    async def check_broker(self) -> None:
        if self.publisher is not None:
            await self.publisher.check_broker()

    def check_publish_lag(self, limit: int) -> None:
        if self.publisher is not None:
            self.publisher.check_lag(limit)


@dataclass
class Projection:
    """The running projection: its tasks and what they run, one partition
    (:class:`OnePartition`) or this process's share of N (:class:`PartitionShare`); both
    answer the same readiness questions."""

    runs: OnePartition | PartitionShare
    tasks: list[asyncio.Task]
    publish_lag_limit: int = 0

    @property
    def projector(self) -> Projector | None:
        """With one partition, its projector."""
        return self.runs.projector if isinstance(self.runs, OnePartition) else None

    @property
    def publisher(self) -> Publisher | None:
        """With one partition, its publisher."""
        return self.runs.publisher if isinstance(self.runs, OnePartition) else None

    async def check(self) -> None:
        """Readiness: every task still running and the last batch applied cleanly."""
        for task in self.tasks:
            if task.done():
                raise RuntimeError(f"{task.get_name()} has stopped")
        await self.runs.check()

    def readiness_checks(self) -> dict[str, Callable[[], Awaitable[None]]]:
        """``/readyz`` checks by name: the projection; with a publisher, its lag, and
        RabbitMQ when it publishes there (an active publisher must be connected)."""
        checks: dict[str, Callable[[], Awaitable[None]]] = {"projection": self.check}
        if self.runs.publishes:
            if self.runs.uses_broker:
                checks["rabbitmq"] = self.runs.check_broker

            async def publish_lag() -> None:
                self.runs.check_publish_lag(self.publish_lag_limit)

            checks["publish_lag"] = publish_lag
        return checks


def start_projection(settings: Settings, stop: asyncio.Event,
                     feed: InProcessFeed | None = None) -> Projection:
    """The projector, and its publisher: to RabbitMQ with ``amqp_url``, else into ``feed``
    (``talk up``'s in-process delivery) when one is given. With N partitions, this process's
    share of them (projector/partition_share.py)."""
    PARTITIONS_CONFIGURED.set(settings.projector_partitions)
    if settings.projector_partitions > 1:
        return _start_partitioned(settings, stop, feed)
    publisher: Publisher | None = None
    if settings.amqp_url:
        publisher = Publisher(settings)
    elif feed is not None:
        publisher = InProcessPublisher(settings, feed)
    projector = build_projector(settings, with_outbox=publisher is not None)
    tasks = [asyncio.create_task(projector.run(stop), name="projector")]
    if publisher is not None:
        publisher.follow(projector)  # woken in process when a batch commits, not by NOTIFY
        tasks.append(asyncio.create_task(publisher.run(stop), name="publisher"))
    return Projection(OnePartition(projector, publisher), tasks, settings.publish_lag_limit)


def _start_partitioned(settings: Settings, stop: asyncio.Event,
                       feed: InProcessFeed | None) -> Projection:
    n = settings.projector_partitions
    factory: PublisherFactory | None = None
    if settings.amqp_url:
        def factory(p: int, listener: Listener) -> Publisher:
            return Publisher(settings, partition=p, lock_key=publisher_lock_key(n, p),
                             connection_name=f"talk-publisher-{p}", listener=listener)
    elif feed is not None:
        def factory(p: int, listener: Listener) -> Publisher:
            return InProcessPublisher(settings, feed, partition=p,
                                      lock_key=publisher_lock_key(n, p), listener=listener)
    share = PartitionShare(settings, factory)
    tasks = [asyncio.create_task(share.run(stop), name="projector")]
    return Projection(share, tasks, settings.publish_lag_limit)


def health_app(settings: Settings, db: Database,
               projection: Projection) -> web.Application:
    app = create_base_app(settings, "projector", authenticate=False)
    app[READINESS_CHECKS]["postgres"] = db.ping
    app[READINESS_CHECKS]["schema"] = schema_check(db)
    app[READINESS_CHECKS].update(projection.readiness_checks())
    return app


async def projector_main(settings: Settings, stop: asyncio.Event) -> None:
    pool = make_pool(settings, min_size=1, max_size=2, name="talk-projector-health")
    await pool.open(wait=False)
    try:
        projection = start_projection(settings, stop)
        try:
            await serve_until(health_app(settings, Database(pool), projection), settings.host,
                              settings.projector_port, stop, settings.shutdown_timeout, "projector")
        finally:
            stop.set()
            await asyncio.gather(*projection.tasks)
    finally:
        await pool.close()


def run_projector_service(settings: Settings) -> int:
    # A batch allocates many short-lived objects that reference counting frees; with the
    # default thresholds the cyclic collector runs every 700 allocations (bench.projector:
    # ~15 % of the projector's CPU per event). Young collections every 50,000 instead.
    gc.set_threshold(*GC_THRESHOLDS)

    async def main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await projector_main(settings, stop)

    run_main(main(), settings)
    return 0
