"""Fixtures for publishing: this session's own exchange and stream queue (deleted at the end),
the projector writing the outbox, publishers, the API, taps and TCP proxies."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from urllib.parse import urlsplit
from uuid import uuid4

import aio_pika
import pytest
from aiohttp.test_utils import TestClient, TestServer

from projector.outbox import Outbox
from projector.publisher import Publisher
from services.settings import Settings
from tests.integration.publishing.proxy import TcpProxy
from tests.integration.publishing.tap import Tap
from tests.support import Running


@pytest.fixture(scope="session")
async def amqp_settings(settings: Settings, amqp_url: str) -> AsyncIterator[Settings]:
    """The session's settings with RabbitMQ, and an exchange and stream queue of its own."""
    suffix = f"{os.getpid()}.{uuid4().hex[:8]}"
    amqp = settings.model_copy(update={
        "amqp_url": amqp_url, "exchange": f"talk.test.{suffix}",
        "stream_queue": f"talk.test.{suffix}.stream", "amqp_timeout": 5.0,
    })
    yield amqp
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(amqp.stream_queue)
        await channel.exchange_delete(amqp.exchange)


class RunningPublisher(Running):
    def __init__(self, publisher: Publisher) -> None:
        super().__init__(publisher, "test-publisher")

    @property
    def publisher(self) -> Publisher:
        return self.service


@pytest.fixture()
async def start_publisher(amqp_settings: Settings) -> AsyncIterator:
    running: list[RunningPublisher] = []

    def start(settings: Settings | None = None) -> RunningPublisher:
        rp = RunningPublisher(Publisher(settings or amqp_settings))
        running.append(rp)
        return rp

    yield start
    for rp in running:
        if not rp.task.done():
            await rp.close()


@pytest.fixture()
def start_outbox_projector(start_projector):
    """Start a projector writing the outbox (as ``build_projector`` does with ``amqp_url``)."""

    def start(**kwargs):
        outbox = Outbox()
        return start_projector(before_batch=outbox.before_batch, after_batch=outbox.after_batch,
                               **kwargs)

    return start


@pytest.fixture()
async def outbox_projector(start_outbox_projector):
    rp = start_outbox_projector()
    await asyncio.wait_for(rp.projector.active.wait(), 15)
    return rp


@pytest.fixture()
async def talk_api(settings: Settings) -> AsyncIterator[TestClient]:
    """The command and query APIs (as ``talk up`` serves them), without a projector."""
    from services.up import build_up_app

    client = TestClient(TestServer(build_up_app(settings)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture()
async def open_tap(amqp_settings: Settings) -> AsyncIterator:
    taps: list[Tap] = []

    async def open_(pattern: str) -> Tap:
        tap = await Tap.open(amqp_settings, pattern)
        taps.append(tap)
        return tap

    yield open_
    for tap in taps:
        await tap.close()


def via_proxy(settings: Settings, proxy: TcpProxy, amqp_url: str) -> Settings:
    """``settings`` with the broker reached through ``proxy`` (same credentials)."""
    target = urlsplit(amqp_url)
    return settings.model_copy(update={"amqp_url": proxy.url(target.username or "guest",
                                                             target.password or "guest")})
