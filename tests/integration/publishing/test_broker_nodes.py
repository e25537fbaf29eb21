"""Several AMQP URLs (one per node of a RabbitMQ cluster): the publisher connects to the first
node that answers, and when its node is lost it goes on through another one, publishing
every event once after dedupe, in per-talk order. The "nodes" are TCP proxies in front of the
one local broker (tests/integration/broker_nodes.py)."""

from __future__ import annotations

import asyncio
from uuid import uuid4

from projector.publisher import Publisher
from tests.integration.broker_nodes import close_broker_connection, closed_port_url, node_proxies
from tests.integration.publishing.caller import Caller
from tests.integration.publishing.expected import assert_published_as_expected, expected_bodies
from tests.support import wait_until


async def _true(value: bool) -> bool:
    return value


async def _post_and_expect(settings, tap, alice: Caller, chat_id: str, texts: list[str]) -> None:
    last = 0
    for text in texts:
        _, last = await alice.post(chat_id, text)
    expected = await expected_bodies(settings.database_url, alice.customer_id, last)
    await tap.wait_for(len(expected), f"the events up to {texts[-1]!r} published")
    assert_published_as_expected(tap.received, expected)


async def test_the_first_reachable_node_is_used(
        settings, amqp_settings, amqp_url, talk_api, outbox_projector, start_publisher,
        open_tap):
    customer = uuid4()
    tap = await open_tap(f"{customer}.#")
    with closed_port_url() as refused:
        publisher = start_publisher(amqp_settings.model_copy(
            update={"amqp_url": f"{refused},{amqp_url}"})).publisher
        await asyncio.wait_for(publisher.connected.wait(), 15)
        alice = Caller(talk_api, customer, uuid4())
        chat, _ = await alice.create_group(uuid4())
        await _post_and_expect(settings, tap, alice, chat["id"], ["one", "two"])


async def test_a_lost_node_is_replaced_by_a_surviving_one(
        settings, amqp_settings, amqp_url, talk_api, outbox_projector, start_publisher,
        open_tap):
    customer = uuid4()
    tap = await open_tap(f"{customer}.#")
    async with node_proxies(amqp_url, 2) as ((node_a, node_b), urls):
        publisher = start_publisher(amqp_settings.model_copy(
            update={"amqp_url": urls})).publisher
        await asyncio.wait_for(publisher.connected.wait(), 15)
        assert (node_a.connections, node_b.connections) == (1, 0)
        alice = Caller(talk_api, customer, uuid4())
        chat, _ = await alice.create_group(uuid4())
        await _post_and_expect(settings, tap, alice, chat["id"], ["before"])

        node_a.cut()  # node A is gone: its connection drops, new ones are refused
        await wait_until(lambda: _true(node_b.connections == 1 and publisher.connected.is_set()),
                         timeout=15, what="the publisher to reconnect through node B")
        await _post_and_expect(settings, tap, alice, chat["id"], ["after 1", "after 2"])
        assert node_a.connections == 0


async def test_a_connection_closed_by_the_broker_moves_to_the_next_node(
        settings, amqp_settings, amqp_url, talk_api, outbox_projector, open_tap):
    customer = uuid4()
    tap = await open_tap(f"{customer}.#")
    name = f"talk-test-publisher-{uuid4().hex[:8]}"
    async with node_proxies(amqp_url, 2) as ((node_a, node_b), urls):
        publisher = Publisher(amqp_settings.model_copy(update={"amqp_url": urls}),
                              connection_name=name)
        stop = asyncio.Event()
        running = asyncio.create_task(publisher.run(stop))
        try:
            await asyncio.wait_for(publisher.connected.wait(), 15)
            assert (node_a.connections, node_b.connections) == (1, 0)
            alice = Caller(talk_api, customer, uuid4())
            chat, _ = await alice.create_group(uuid4())
            await _post_and_expect(settings, tap, alice, chat["id"], ["before"])

            await close_broker_connection(name)  # node A still accepts: round-robin moves on
            await wait_until(lambda: _true(node_b.connections == 1
                                           and publisher.connected.is_set()),
                             timeout=15, what="the publisher to reconnect through node B")
            assert node_a.connections == 0
            await _post_and_expect(settings, tap, alice, chat["id"], ["after"])
        finally:
            stop.set()
            await asyncio.wait_for(running, 15)
