"""What the end-to-end tests run the services against: a fresh, empty database of their own
(the services migrate it) and an exchange and stream queue of their own on the local
RabbitMQ, both removed afterwards so parallel sessions never see each other."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from uuid import uuid4

import aio_pika

from services.settings import Settings
from tests.infra import create_database, drop_database


@contextmanager
def empty_database(admin_url: str) -> Iterator[str]:
    """A new database with nothing in it (not migrated); dropped at the end."""
    name = f"talk_e2e_{os.getpid()}_{uuid4().hex[:8]}"
    url = create_database(admin_url, name)
    try:
        yield url
    finally:
        drop_database(admin_url, name)


@asynccontextmanager
async def own_broker_topology(amqp_url: str) -> AsyncIterator[Settings]:
    """Settings naming an exchange and stream queue of this test's own (deleted at the end)."""
    suffix = f"{os.getpid()}.{uuid4().hex[:8]}"
    settings = Settings(amqp_url=amqp_url, exchange=f"talk.e2e.{suffix}",
                        stream_queue=f"talk.e2e.{suffix}.stream")
    try:
        yield settings
    finally:
        connection = await aio_pika.connect(amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(settings.stream_queue)
            await channel.exchange_delete(settings.exchange)


def broker_env(settings: Settings) -> dict[str, str]:
    """The ``clean_env`` keywords that point a service at ``settings``' broker topology."""
    assert settings.amqp_url is not None
    return {"amqp_url": settings.amqp_url, "exchange": settings.exchange,
            "stream_queue": settings.stream_queue}
