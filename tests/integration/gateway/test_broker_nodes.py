"""Several AMQP URLs (one per node of a RabbitMQ cluster): the gateway attaches through the
first node that answers, and when its node is lost it re-attaches through another one;
connected sockets miss nothing, in order. The "nodes" are TCP proxies in front of the one
local broker (tests/integration/broker_nodes.py)."""

from __future__ import annotations

from uuid import uuid4

from services.gateway.rabbitmq_feed import RabbitMQFeed
from tests.integration.broker_nodes import close_broker_connection, closed_port_url, node_proxies
from tests.integration.gateway.support import event_frame, without_token
from tests.support import wait_until


async def _true(value: bool) -> bool:
    return value


async def _subscribed(gateway):
    customer, agent = uuid4(), uuid4()
    client = await gateway.connect(customer, agent)
    topic = f"agent:{agent}"
    await client.subscribe(topic)

    async def publish(publisher) -> dict:
        return await publisher.publish("message_created", customer, uuid4(), [agent])

    return client, topic, publish


async def test_the_gateway_attaches_through_the_first_reachable_node(
        gateway_settings, start_gateway, publisher):
    with closed_port_url() as refused:
        gateway = await start_gateway(gateway_settings.model_copy(
            update={"amqp_url": f"{refused},{gateway_settings.amqp_url}"}))
        client, topic, publish = await _subscribed(gateway)
        sent = [await publish(publisher) for _ in range(3)]
        assert [without_token(f) for f in await client.frames(3)] == [
            event_frame(b, topic) for b in sent]


async def test_a_lost_node_is_replaced_by_a_surviving_one(
        gateway_settings, start_gateway, publisher):
    async with node_proxies(gateway_settings.amqp_url, 2) as ((node_a, node_b), urls):
        gateway = await start_gateway(gateway_settings.model_copy(update={"amqp_url": urls}))
        await wait_until(lambda: _true(node_a.connections == 2),  # the stream, the typing bus
                         what="the gateway's connections through node A")
        assert node_b.connections == 0
        client, topic, publish = await _subscribed(gateway)
        before = [await publish(publisher) for _ in range(5)]
        assert [without_token(f) for f in await client.frames(5)] == [
            event_frame(b, topic) for b in before]

        ready = gateway.hub.feed.ready
        node_a.cut()
        await wait_until(lambda: _true(not ready.is_set()), what="the gateway to notice")
        during = [await publish(publisher) for _ in range(10)]
        await wait_until(lambda: _true(ready.is_set() and node_b.connections == 2), timeout=20,
                         what="the gateway to re-attach through node B")
        after = [await publish(publisher) for _ in range(5)]
        assert [without_token(f) for f in await client.frames(15)] == [
            event_frame(b, topic) for b in during + after]


async def test_a_connection_closed_by_the_broker_moves_to_the_next_node(
        gateway_settings, start_gateway, publisher):
    name = f"talk-test-gateway-{uuid4().hex[:8]}"
    async with node_proxies(gateway_settings.amqp_url, 2) as ((node_a, node_b), urls):
        settings = gateway_settings.model_copy(update={"amqp_url": urls})
        gateway = await start_gateway(settings, RabbitMQFeed(settings, name=name))
        client, topic, publish = await _subscribed(gateway)
        await wait_until(lambda: _true(node_a.connections == 2),
                         what="the gateway's connections through node A")

        await close_broker_connection(name)  # the stream's connection only; node A stays up
        during = [await publish(publisher) for _ in range(10)]
        ready = gateway.hub.feed.ready
        await wait_until(lambda: _true(ready.is_set() and node_b.connections == 1), timeout=20,
                         what="the stream consumer to re-attach through node B")
        assert node_a.connections == 1  # the typing bus kept its connection
        after = [await publish(publisher) for _ in range(5)]
        assert [without_token(f) for f in await client.frames(15)] == [
            event_frame(b, topic) for b in during + after]
