"""The stream queue keeps the published history: a durable stream queue with the configured
retention, bound to the exchange with ``#``, that a consumer reads from an offset."""

from __future__ import annotations

from uuid import uuid4

import aio_pika
import aiormq
import pytest

from tests.integration.publishing.caller import Caller
from tests.integration.publishing.expected import expected_bodies
from tests.integration.publishing.stream_reading import customer_bodies_from_first


async def test_the_stream_queue_keeps_the_history(
        settings, amqp_settings, talk_api, outbox_projector, start_publisher, open_tap):
    customer = uuid4()
    tap = await open_tap(f"{customer}.#")
    start_publisher()
    alice = Caller(talk_api, customer, uuid4())
    chat, _ = await alice.create_group(uuid4())
    _, last = await alice.post(chat["id"], "kept")
    expected = await expected_bodies(settings.database_url, customer, last)
    await tap.wait_for(len(expected), "published")

    # Read the stream from its first offset, as a gateway resuming would.
    connection = await aio_pika.connect(amqp_settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)  # a stream queue needs a prefetch
        queue = await channel.declare_queue(
            amqp_settings.stream_queue, durable=True,
            arguments={"x-queue-type": "stream", "x-max-age": amqp_settings.stream_max_age})
        ours = await customer_bodies_from_first(queue, customer, len(expected))
    assert [b["event_id"] for b in ours] == [b["event_id"] for b in expected]

    # Declared as a stream with that retention: a different one is refused.
    connection = await aio_pika.connect(amqp_settings.amqp_url)
    async with connection:
        channel = await connection.channel()
        with pytest.raises(aiormq.exceptions.ChannelPreconditionFailed):
            await channel.declare_queue(
                amqp_settings.stream_queue, durable=True,
                arguments={"x-queue-type": "stream", "x-max-age": "1D"})
