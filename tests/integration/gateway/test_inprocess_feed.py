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


async def test_in_process_retention_is_bounded_in_bytes_too(start_gateway):
    feed = InProcessFeed(retention=10_000, retention_bytes=20_000)
    gateway = await start_gateway(feed=feed)
    customer, a = uuid4(), uuid4()
    client = await gateway.connect(customer, a)
    await client.subscribe(f"agent:{a}")
    first = body("message_created", customer, uuid4(), [a], 0)
    first["data"] = {"text": "x" * 5_000}
    feed.publish(first)
    token = (await client.frame())["resume_token"]
    await client.close()
    for i in range(5):  # 25 KB more: the first message no longer fits in 20 KB
        big = body("message_created", customer, uuid4(), [a], 1 + i)
        big["data"] = {"text": "x" * 5_000}
        feed.publish(big)
    client = await gateway.connect(customer, a)
    await client.subscribe(f"agent:{a}", resume_token=token)
    assert await client.frame() == {"type": "resync_required"}


async def test_talk_up_serves_the_contract_and_typing_in_process(settings, projector):
    """``talk up`` without RabbitMQ: the gateway on the API's port, typing kept in-process."""
    from aiohttp.test_utils import TestClient, TestServer

    from services.up import build_up_app
    from tests.integration.gateway.support import Client, post_talk
    from tests.support import bearer

    app = build_up_app(settings, InProcessFeed())
    api = TestClient(TestServer(app))
    await api.start_server()
    try:
        resp = await api.get("/v1.0/asyncapi.json")  # no token
        assert resp.status == 200
        assert (await resp.json())["asyncapi"] == "3.0.0"
        customer, alice, bob = uuid4(), uuid4(), uuid4()
        talk = await post_talk(api, customer, alice, [bob])
        sockets = []
        for agent in (alice, bob):
            ws = await api.ws_connect("/v1.0/ws", headers=bearer(customer, agent))
            client = Client(ws, customer, agent, validate=True)
            await client.subscribe(f"chat:{talk['id']}")
            sockets.append(client)
        await sockets[0].send({"type": "typing", "chat_id": talk["id"]})
        assert await sockets[1].frame() == {
            "type": "typing", "topic": f"chat:{talk['id']}",
            "data": {"chat_id": talk["id"], "agent_id": str(alice)}}
    finally:
        await api.close()
