"""Fixtures for the partitioned-projection tests: an exchange and stream queue of the test's
own on this session's RabbitMQ (deleted at the end), for ``talk projector`` processes that
publish."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from uuid import uuid4

import aio_pika
import pytest


@pytest.fixture()
async def stream_names(amqp_url: str) -> AsyncIterator[dict[str, str]]:
    """``TALK_*`` settings (without the prefix) naming this test's own exchange and stream
    queue on the session's broker."""
    suffix = f"{os.getpid()}.{uuid4().hex[:8]}"
    names = {"amqp_url": amqp_url, "exchange": f"talk.test.partitions.{suffix}",
             "stream_queue": f"talk.test.partitions.{suffix}.stream"}
    yield names
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(names["stream_queue"])
        await channel.exchange_delete(names["exchange"])
