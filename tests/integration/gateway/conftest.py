"""Gateway fixtures: a stream (exchange + stream queue) of this test session's own, deleted
at the end; gateways started in-process on a real port; a publisher of stream messages."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from uuid import uuid4

import aio_pika
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer

from tests.integration.gateway.support import Gateway, StreamPublisher


def stream_names(label: str) -> tuple[str, str]:
    base = f"talk.test.{label}.{os.getpid()}.{uuid4().hex[:8]}"
    return base, f"{base}.stream"


async def declare_stream(amqp_url: str, exchange: str, queue: str,
                         arguments: dict | None = None) -> None:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        ex = await channel.declare_exchange(exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        q = await channel.declare_queue(queue, durable=True, arguments={
            "x-queue-type": "stream", **(arguments or {})})
        await q.bind(ex, "#")


async def delete_stream(amqp_url: str, exchange: str, queue: str, *others: str) -> None:
    """Delete the queue and the exchanges (``exchange`` and ``others``)."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)
        for name in (exchange, *others):
            await channel.exchange_delete(name)


async def declare_published_stream(settings) -> None:
    """The exchange and stream queue exactly as the publisher declares them."""
    from services.amqp import declare_topology

    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        await declare_topology(await connection.channel(), settings)


@pytest.fixture(scope="session")
def gateway_settings(settings, amqp_url) -> Iterator:
    """The session's settings pointed at a stream of this session's own."""
    exchange, queue = stream_names("gw")
    gateway_settings = settings.model_copy(update={
        "amqp_url": amqp_url, "exchange": exchange, "stream_queue": queue,
        "ephemeral_exchange": f"{exchange}.ephemeral",
        "gateway_resume_timeout": 1.0, "gateway_heartbeat": 30.0,
    })
    asyncio.run(declare_published_stream(gateway_settings))
    yield gateway_settings
    asyncio.run(delete_stream(amqp_url, exchange, queue, f"{exchange}.ephemeral"))


@pytest.fixture()
async def http_session() -> AsyncIterator[ClientSession]:
    async with ClientSession() as session:
        yield session


@pytest.fixture()
async def start_gateway(gateway_settings, http_session) -> AsyncIterator:
    """Starts gateway apps (the RabbitMQ feed unless given another) on real ports."""
    from services.gateway.app import HUB, create_gateway_app

    servers: list[TestServer] = []

    async def start(settings=None, feed=None) -> Gateway:
        app = create_gateway_app(settings or gateway_settings, feed)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        await asyncio.wait_for(app[HUB].feed.ready.wait(), 15)
        return Gateway(str(server.make_url("")).rstrip("/"), app, http_session, server)

    yield start
    for server in servers:
        await server.close()


@pytest.fixture()
async def gateway(start_gateway) -> Gateway:
    return await start_gateway()


@pytest.fixture()
async def publisher(gateway_settings) -> AsyncIterator[StreamPublisher]:
    connection = await aio_pika.connect(gateway_settings.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(gateway_settings.exchange)
        yield StreamPublisher(exchange)


class LiveSystem:
    """The whole path: the APIs, a projector writing the outbox, the publisher, a gateway."""

    def __init__(self, api: TestClient, gateway: Gateway) -> None:
        self.api = api
        self.gateway = gateway


@pytest.fixture()
async def live_system(settings, gateway_settings, start_projector,
                      start_gateway) -> AsyncIterator[LiveSystem]:
    from projector.outbox import Outbox
    from projector.publisher import Publisher
    from services.up import build_up_app

    outbox = Outbox()
    projector = start_projector(before_batch=outbox.before_batch, after_batch=outbox.after_batch)
    await asyncio.wait_for(projector.projector.active.wait(), 15)
    publisher = Publisher(gateway_settings)
    stop = asyncio.Event()
    publishing = asyncio.create_task(publisher.run(stop), name="test-publisher")
    await asyncio.wait_for(publisher.connected.wait(), 15)
    gateway = await start_gateway()
    api = TestClient(TestServer(build_up_app(settings)))
    await api.start_server()
    try:
        yield LiveSystem(api, gateway)
    finally:
        await api.close()
        stop.set()
        await asyncio.wait_for(publishing, 15)
