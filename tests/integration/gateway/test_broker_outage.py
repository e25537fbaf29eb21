"""The gateway's connection to RabbitMQ breaks and comes back: connected sockets get every
event published meanwhile, once, in order (the live consumer re-attaches where it was)."""

from __future__ import annotations

from urllib.parse import urlsplit
from uuid import uuid4

import pytest

from tests.integration.gateway.support import event_frame, without_token
from tests.integration.publishing.proxy import TcpProxy
from tests.support import wait_until


@pytest.fixture()
async def proxied_gateway(gateway_settings, start_gateway):
    target = urlsplit(gateway_settings.amqp_url)
    proxy = await TcpProxy(target.hostname or "127.0.0.1", target.port or 5672).start()
    try:
        gateway = await start_gateway(gateway_settings.model_copy(update={
            "amqp_url": proxy.url(target.username or "guest", target.password or "guest")}))
        yield proxy, gateway
    finally:
        await proxy.close()


async def _outage(proxy: TcpProxy, gateway, publish) -> list[dict]:
    """Cut the gateway off the broker, publish meanwhile, restore; what was published."""
    ready = gateway.hub.feed.ready
    proxy.cut()
    await wait_until(lambda: _is(not ready.is_set()), what="the gateway to notice the cut")
    during = [await publish() for _ in range(30)]
    proxy.restore()
    await wait_until(lambda: _is(ready.is_set()), timeout=20, what="the gateway to re-attach")
    return during


async def _is(value: bool) -> bool:
    return value


async def test_sockets_miss_nothing_across_a_broker_connection_loss(proxied_gateway, publisher):
    proxy, gateway = proxied_gateway
    customer, a = uuid4(), uuid4()
    topic = f"agent:{a}"
    client = await gateway.connect(customer, a)
    await client.subscribe(topic)

    async def publish() -> dict:
        return await publisher.publish("message_created", customer, uuid4(), [a])

    before = [await publish() for _ in range(20)]
    assert [without_token(f) for f in await client.frames(20)] == [
        event_frame(b, topic) for b in before]
    during = await _outage(proxy, gateway, publish)
    after = [await publish() for _ in range(20)]
    assert [without_token(f) for f in await client.frames(50)] == [
        event_frame(b, topic) for b in during + after]


async def test_a_loss_before_the_first_live_message_loses_nothing(proxied_gateway, publisher):
    proxy, gateway = proxied_gateway
    assert gateway.hub.position is None
    customer, a = uuid4(), uuid4()
    topic = f"agent:{a}"
    client = await gateway.connect(customer, a)
    await client.subscribe(topic)

    async def publish() -> dict:
        return await publisher.publish("message_created", customer, uuid4(), [a])

    during = await _outage(proxy, gateway, publish)
    after = await publish()
    assert [without_token(f) for f in await client.frames(31)] == [
        event_frame(b, topic) for b in during + [after]]
