"""Commands and queries keep working while RabbitMQ cannot be reached at all: the projector
keeps projecting, the outbox grows, the publisher counts its failures and retries; when the
broker is reachable again, the backlog is published."""

from __future__ import annotations

from uuid import uuid4

from projector.publisher import PUBLISH_FAILURES, PUBLISH_LAG_EVENTS
from tests.integration.publishing.caller import CHATS, MESSAGES, Caller
from tests.integration.publishing.conftest import via_proxy
from tests.integration.publishing.expected import assert_published_as_expected, expected_bodies
from tests.integration.publishing.outbox_rows import outbox_count
from tests.support import wait_until


async def test_commands_and_queries_work_while_the_broker_is_unreachable(
        settings, amqp_settings, amqp_url, proxy, db, talk_api, outbox_projector,
        start_publisher, open_tap):
    proxy.cut()  # unreachable from the start: every connection refused
    customer = uuid4()
    tap = await open_tap(f"{customer}.#")
    failed_before = PUBLISH_FAILURES._value.get()
    publisher = start_publisher(via_proxy(amqp_settings, proxy, amqp_url)).publisher

    alice = Caller(talk_api, customer, uuid4())
    chat, _ = await alice.create_group(uuid4(), name="offline")
    texts = [f"message {i}" for i in range(10)]
    for text in texts:
        message, pos = await alice.post(chat["id"], text)
    _, pos = await alice.command("PUT", f"{MESSAGES}/{message['id']}", {"text": "edited"})
    _, pos = await alice.command("PUT", f"{CHATS}/{chat['id']}", {"name": "still offline"})

    # The reads see every command (the projection goes on).
    listed = await alice.read(f"{MESSAGES}?chat_id={chat['id']}", pos)
    assert [m["text"] for m in listed["result"] if m["owner_type"] == "agent"] == \
        ["edited", *reversed(texts[:-1])]
    assert (await alice.read(f"{CHATS}/{chat['id']}", pos))["name"] == "still offline"

    expected = await expected_bodies(settings.database_url, customer, pos)

    async def backlog() -> bool:
        return (await outbox_count(db, customer) == len(expected)
                and PUBLISH_FAILURES._value.get() > failed_before
                and PUBLISH_LAG_EVENTS._value.get() >= len(expected))

    await wait_until(backlog, what="the outbox to hold every event, the failures counted")
    assert not publisher.connected.is_set()
    assert tap.received == []

    proxy.restore()
    await tap.wait_for(len(expected), "the backlog published", timeout=30)
    assert_published_as_expected(tap.received, expected)
    await wait_until(lambda: _is_zero(outbox_count(db, customer)), what="the outbox drained")


async def _is_zero(count) -> bool:
    return await count == 0
