"""A stream queue that exists already is used as it is: declared earlier with other
arguments (another retention, no replica count) and without its binding, the publisher with
``TALK_STREAM_INITIAL_CLUSTER_SIZE`` set neither fails on it (RabbitMQ refuses a
redeclaration with other arguments) nor publishes past it (it binds it again)."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import aio_pika

from tests.integration.publishing.caller import Caller
from tests.integration.publishing.expected import expected_bodies
from tests.integration.publishing.stream_reading import customer_bodies_from_first


async def test_an_existing_stream_queue_is_used_as_it_is(
        settings, amqp_settings, talk_api, outbox_projector, start_publisher):
    suffix = uuid4().hex[:8]  # a queue of this test's own: the session's one exists already
    own = amqp_settings.model_copy(update={
        "exchange": f"{amqp_settings.exchange}.{suffix}",
        "stream_queue": f"{amqp_settings.stream_queue}.{suffix}",
        "stream_initial_cluster_size": 3})
    connection = await aio_pika.connect(own.amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_queue(own.stream_queue, durable=True, arguments={
            "x-queue-type": "stream", "x-max-age": "1D"})  # no exchange, no binding
    try:
        await _published_into_it(settings, own, talk_api, start_publisher)
    finally:
        connection = await aio_pika.connect(own.amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(own.stream_queue)
            await channel.exchange_delete(own.exchange)


async def _published_into_it(settings, own, talk_api, start_publisher) -> None:
    publisher = start_publisher(own).publisher
    await asyncio.wait_for(publisher.connected.wait(), 15)
    customer = uuid4()
    alice = Caller(talk_api, customer, uuid4())
    chat, _ = await alice.create_group(uuid4())
    _, last = await alice.post(chat["id"], "into the old queue")
    expected = await expected_bodies(settings.database_url, customer, last)

    connection = await aio_pika.connect(own.amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=100)
        queue = await channel.get_queue(own.stream_queue, ensure=True)
        ours = await customer_bodies_from_first(queue, customer, len(expected))
    assert [b["event_id"] for b in ours] == [b["event_id"] for b in expected]
    assert publisher.broker_error is None
