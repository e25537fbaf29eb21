"""The in-process feed (``talk up`` without RabbitMQ): the same gateway behaviour, fed by
direct calls instead of the stream queue."""

from __future__ import annotations

from uuid import uuid4

import aio_pika
import orjson

from services.gateway.inprocess_feed import FeedExchange, InProcessFeed
from tests.integration.gateway.support import event_frame, without_token


def body(type_: str, customer_id, chat_id, audience, n: int) -> dict:
    return {"type": type_, "event_id": str(uuid4()), "position": n,
            "customer_id": str(customer_id), "chat_id": str(chat_id),
            "audience": [str(a) for a in audience], "data": {"n": n}}


async def test_in_process_feed_delivers_resumes_and_resyncs(start_gateway):
    feed = InProcessFeed(retention=50)
    gateway = await start_gateway(feed=feed)
    customer, a, b = uuid4(), uuid4(), uuid4()
    topic = f"agent:{a}"
    client = await gateway.connect(customer, a)
    await client.subscribe(topic)
    first = body("message_created", customer, uuid4(), [a], 0)
    feed.publish(first)
    feed.publish(body("message_created", customer, uuid4(), [b], 1))  # not a's
    feed.publish(body("message_created", uuid4(), uuid4(), [a], 2))  # another customer's
    marker = body("chat_updated", customer, uuid4(), [a], 3)
    feed.publish(marker)
    assert [without_token(f) for f in await client.frames(2)] == [
        event_frame(first, topic), event_frame(marker, topic)]
    token = client.last_token
    await client.close()

    missed = [body("message_created", customer, uuid4(), [a], 10 + i) for i in range(20)]
    for m in missed:
        feed.publish(m)
    client = await gateway.connect(customer, a)
    await client.subscribe(topic, resume_token=token)
    assert [without_token(f) for f in await client.frames(20)] == [
        event_frame(m, topic) for m in missed]
    live = body("message_updated", customer, uuid4(), [a], 99)
    feed.publish(live)
    assert without_token(await client.frame()) == event_frame(live, topic)
    await client.close()

    for i in range(60):  # the token's offset leaves the 50 kept
        feed.publish(body("message_created", customer, uuid4(), [b], 100 + i))
    client = await gateway.connect(customer, a)
    await client.subscribe(topic, resume_token=token)
    assert await client.frame() == {"type": "resync_required"}
    live = body("message_deleted", customer, uuid4(), [a], 200)
    feed.publish(live)
    assert without_token(await client.frame()) == event_frame(live, topic)


async def test_feed_exchange_takes_what_the_publisher_publishes(start_gateway):
    feed = InProcessFeed()
    gateway = await start_gateway(feed=feed)
    customer, a = uuid4(), uuid4()
    client = await gateway.connect(customer, a)
    await client.subscribe(f"agent:{a}")
    published = body("reaction_added", customer, uuid4(), [a], 1)
    await FeedExchange(feed).publish(
        aio_pika.Message(orjson.dumps(published), message_id=published["event_id"],
                         content_type="application/json"),
        f"{customer}.{published['chat_id']}.reaction_added", mandatory=False, timeout=5)
    assert without_token(await client.frame()) == event_frame(published, f"agent:{a}")
