"""A publishing projector's ``/readyz`` says when RabbitMQ cannot be reached and when the
publish lag is beyond ``TALK_PUBLISH_LAG_LIMIT`` (as the gateway says when its stream is
down), and is 200 again by itself once the broker is back and the backlog is published.

The broker is reached through a TCP proxy the test cuts (the shared RabbitMQ is never
stopped), with an exchange and stream queue of the test's own."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from urllib.parse import urlsplit
from uuid import uuid4

import aio_pika
import pytest
from aiohttp.test_utils import TestClient, TestServer

from events.notifier import CommitNotifier
from events.postgres_store import PostgresEventStore
from projector.service import health_app, start_projection
from services.db import Database, make_pool
from services.settings import Settings
from tests.factories import new_chat_append
from tests.integration.publishing.proxy import TcpProxy
from tests.support import TEST_SECRET, wait_until

LAG_LIMIT = 3
BACKLOG = LAG_LIMIT + 2  # events published while the broker is away


@pytest.fixture()
async def publishing_settings(fresh_database_url: str, amqp_url: str,
                              proxy: TcpProxy) -> AsyncIterator[Settings]:
    target = urlsplit(amqp_url)
    suffix = f"{os.getpid()}.{uuid4().hex[:8]}"
    settings = Settings(
        database_url=fresh_database_url, jwt_secret=TEST_SECRET, log_level="WARNING",
        amqp_url=proxy.url(target.username or "guest", target.password or "guest"),
        exchange=f"talk.test.{suffix}", stream_queue=f"talk.test.{suffix}.stream",
        amqp_timeout=5.0, projector_poll_interval=0.2, publish_lag_limit=LAG_LIMIT)
    yield settings
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(settings.stream_queue)
        await channel.exchange_delete(settings.exchange)


async def _readiness(client: TestClient) -> tuple[int, dict[str, str]]:
    resp = await client.get("/readyz")
    return resp.status, (await resp.json(content_type=None))["checks"]


async def test_readyz_reports_rabbitmq_and_the_publish_lag(
        publishing_settings: Settings, proxy: TcpProxy) -> None:
    settings = publishing_settings
    proxy.cut()  # unreachable from the start
    pool = make_pool(settings, min_size=1, max_size=2, name="talk-projector-health-test")
    await pool.open(wait=True, timeout=10)
    db = Database(pool)
    notifier = CommitNotifier(settings.database_url)
    await notifier.start()
    stop = asyncio.Event()
    projection = start_projection(settings, stop)
    client = TestClient(TestServer(health_app(settings, db, projection)))
    await client.start_server()
    try:
        async def broker_reported() -> bool:
            status, checks = await _readiness(client)
            return status == 503 and checks["rabbitmq"].startswith("failed")

        await wait_until(broker_reported, timeout=20, what="/readyz to report RabbitMQ")
        status, checks = await _readiness(client)
        assert checks["postgres"] == "ok" and checks["projection"] == "ok", checks
        assert checks["publish_lag"] == "ok", checks  # nothing to publish yet

        store = PostgresEventStore(db, notifier)
        for _ in range(BACKLOG):
            append, metadata = new_chat_append()
            await store.append([append], metadata)

        async def lag_reported() -> bool:
            status, checks = await _readiness(client)
            return status == 503 and checks["publish_lag"].startswith("failed")

        await wait_until(lag_reported, timeout=20, what="/readyz to report the publish lag")
        _, checks = await _readiness(client)
        assert f"{BACKLOG} events" in checks["publish_lag"], checks

        proxy.restore()

        async def ready() -> bool:
            status, _ = await _readiness(client)
            return status == 200

        await wait_until(ready, timeout=30, what="/readyz 200 once the backlog is published")
        assert projection.publisher is not None and projection.publisher.lag == 0
    finally:
        await client.close()
        stop.set()
        await asyncio.wait_for(asyncio.gather(*projection.tasks), 15)
        await notifier.stop()
        await pool.close()
