"""Resuming with a resume token: every missed event once, in order, then live; beyond the
stream's retention (or a token of another stream) one ``resync_required`` then live."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import aio_pika
import pytest

from services.gateway.tokens import ResumeTokens
from tests.integration.gateway.conftest import declare_stream, delete_stream, stream_names
from tests.integration.gateway.support import (
    StreamPublisher,
    create_talk,
    event_frame,
    without_token,
)
from tests.support import TEST_SECRET, wait_until

TOKENS = ResumeTokens(TEST_SECRET)


async def test_reconnect_with_token_gets_exactly_the_missed_200_in_order(api, gateway, publisher):
    customer, a, b = uuid4(), uuid4(), uuid4()
    chat = await create_talk(api, customer, a, [b])
    topic = f"chat:{chat['id']}"
    client = await gateway.connect(customer, a)
    await client.subscribe(topic)
    seen = [await publisher.publish("message_created", customer, chat["id"], [a, b])
            for _ in range(3)]
    assert [without_token(f) for f in await client.frames(3)] == [
        event_frame(x, topic) for x in seen]
    token = client.last_token
    await client.close()

    missed = []
    for i in range(200):
        missed.append(await publisher.publish("message_created", customer, chat["id"], [a, b]))
        if i % 20 == 0:  # other talks' traffic in between
            await publisher.publish("message_created", customer, uuid4(), [b])

    client = await gateway.connect(customer, a)
    await client.subscribe(topic, resume_token=token)
    got = [without_token(f) for f in await client.frames(200)]
    assert got == [event_frame(x, topic) for x in missed]
    live = await publisher.publish("message_updated", customer, chat["id"], [a, b])
    assert without_token(await client.frame()) == event_frame(live, topic)


async def test_resume_joins_live_without_gap_or_duplicate(gateway, publisher):
    customer, a = uuid4(), uuid4()
    topic = f"agent:{a}"
    client = await gateway.connect(customer, a)
    await client.subscribe(topic)
    first = await publisher.publish("message_created", customer, uuid4(), [a])
    assert without_token(await client.frame()) == event_frame(first, topic)
    token = client.last_token
    await client.close()

    expected = [await publisher.publish("message_created", customer, uuid4(), [a])
                for _ in range(100)]

    async def keep_publishing() -> None:
        for _ in range(200):
            expected.append(await publisher.publish("message_created", customer, uuid4(), [a]))

    running = asyncio.create_task(keep_publishing())
    client = await gateway.connect(customer, a)
    await client.subscribe(topic, resume_token=token)
    await running
    marker = await publisher.publish("chat_updated", customer, uuid4(), [a])
    got = []
    while True:
        frame = without_token(await client.frame())
        if frame == event_frame(marker, topic):
            break
        got.append(frame)
    assert len(got) == len(expected) == 300
    assert got == [event_frame(x, topic) for x in expected]


async def test_token_of_another_event_at_that_offset_gets_resync_required(gateway, publisher):
    customer, a = uuid4(), uuid4()
    topic = f"agent:{a}"
    client = await gateway.connect(customer, a)
    await client.subscribe(topic)
    await publisher.publish("message_created", customer, uuid4(), [a])
    point = TOKENS.decode((await client.frame())["resume_token"], str(customer))
    assert point.genuine
    await client.close()
    await publisher.publish("message_created", customer, uuid4(), [a])  # missed, not replayed

    for forged in (TOKENS.encode(point.offset, str(uuid4()), str(customer)),  # recreated
                   TOKENS.encode(point.offset + 10_000_000, str(uuid4()), str(customer))):
        client = await gateway.connect(customer, a)
        await client.subscribe(topic, resume_token=forged)
        assert await client.frame() == {"type": "resync_required"}
        live = await publisher.publish("message_updated", customer, uuid4(), [a])
        assert without_token(await client.frame()) == event_frame(live, topic)
        await client.close()


async def _first_offset(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1)
        q = await channel.get_queue(queue, ensure=False)
        got: asyncio.Future = asyncio.get_running_loop().create_future()

        async def on_message(message) -> None:
            if not got.done():
                got.set_result(int(message.headers["x-stream-offset"]))

        await q.consume(on_message, arguments={"x-stream-offset": "first"})
        return await asyncio.wait_for(got, 10)


@pytest.fixture()
async def short_stream(gateway_settings):
    """A stream of its own keeping only a few KiB (tiny segments), so old offsets expire."""
    exchange, queue = stream_names("retention")
    await declare_stream(gateway_settings.amqp_url, exchange, queue, {
        "x-max-length-bytes": 4000, "x-stream-max-segment-size-bytes": 1000})
    try:
        yield gateway_settings.model_copy(update={"exchange": exchange, "stream_queue": queue})
    finally:
        await delete_stream(gateway_settings.amqp_url, exchange, queue)


async def test_token_beyond_retention_gets_resync_required_then_live(short_stream,
                                                                     start_gateway):
    settings = short_stream
    gateway = await start_gateway(settings)
    connection = await aio_pika.connect(settings.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        publisher = StreamPublisher(await channel.get_exchange(settings.exchange))
        customer, a, b = uuid4(), uuid4(), uuid4()
        topic = f"agent:{a}"
        client = await gateway.connect(customer, a)
        await client.subscribe(topic)
        await publisher.publish("message_created", customer, uuid4(), [a])
        token = (await client.frame())["resume_token"]
        await client.close()

        async def expired() -> bool:
            for _ in range(10):
                await publisher.publish("message_created", customer, uuid4(), [a, b])
            return await _first_offset(settings.amqp_url, settings.stream_queue) > \
                TOKENS.decode(token, str(customer)).offset

        await wait_until(expired, timeout=30, what="the token's offset to leave the stream")
        client = await gateway.connect(customer, a)
        await client.subscribe(topic, resume_token=token)
        assert await client.frame() == {"type": "resync_required"}
        live = await publisher.publish("message_updated", customer, uuid4(), [a])
        assert without_token(await client.frame()) == event_frame(live, topic)
