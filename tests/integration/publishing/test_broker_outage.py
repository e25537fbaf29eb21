"""RabbitMQ unreachable for a while during 1,000 posts, then back: every message is published,
exactly once after dedupe by message_id, in per-talk order; commands and queries keep working
meanwhile. The outage is a TCP proxy between the publisher and the broker that the test cuts
(every connection dropped, new ones refused) and restores."""

from __future__ import annotations

import asyncio
from uuid import uuid4

from projector.publisher import PUBLISH_FAILURES
from tests.integration.publishing.caller import MESSAGES, Caller
from tests.integration.publishing.conftest import via_proxy
from tests.integration.publishing.expected import (
    assert_published_as_expected,
    expected_bodies,
)
from tests.support import wait_until

TALKS, PER_TALK = 10, 100


def failures() -> float:
    return PUBLISH_FAILURES._value.get()


async def outbox_size(db) -> int:
    async with db.statement("test_outbox_size") as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM outbox")
        return (await cur.fetchone())["n"]


async def test_outage_during_1000_posts_loses_nothing(
        settings, amqp_settings, amqp_url, proxy, db, talk_api, outbox_projector,
        start_publisher, open_tap):
    customer, agent = uuid4(), uuid4()
    tap = await open_tap(f"{customer}.#")
    publisher = start_publisher(via_proxy(amqp_settings, proxy, amqp_url)).publisher
    alice = Caller(talk_api, customer, agent)
    created_at = [await alice.create_group(name=f"talk {i}") for i in range(TALKS)]
    chats = [chat["id"] for chat, _ in created_at]
    created = len(await expected_bodies(settings.database_url, customer, created_at[-1][1]))
    await tap.wait_for(created, "the talks' creation published")
    failed_before = failures()

    posted: dict[str, list[str]] = {chat_id: [] for chat_id in chats}
    progress = {"done": 0}
    last = [0]
    holding = asyncio.Event()

    async def writer(chat_id: str) -> None:
        for i in range(PER_TALK):
            message, position = await alice.post(chat_id, f"message {i}")  # asserts 200
            posted[chat_id].append(message["id"])
            last[0] = max(last[0], position)
            progress["done"] += 1
            if progress["done"] == 200:
                proxy.hold_replies()
                holding.set()

    async def outage() -> None:
        # The outage begins with publishes in flight: the broker has them, the publisher
        # has not had their confirms.
        await holding.wait()
        reached_broker = len(tap.received)
        await wait_until(lambda: _true(len(tap.received) > reached_broker),
                         what="publishes whose confirms are held")
        proxy.cut()
        await wait_until(lambda: _true(not publisher.connected.is_set()
                                       and failures() > failed_before),
                         what="the publisher to notice the outage")
        await wait_until(lambda: _true(progress["done"] >= 700), timeout=60,
                         what="posting on during the outage")
        # Queries keep working too, and the outbox holds what is not yet published.
        resp = await alice.read(f"{MESSAGES}?chat_id={chats[0]}&page_size=5", 0)
        assert len(resp["result"]) == 5
        assert await outbox_size(db) > 0
        proxy.restore()

    await asyncio.gather(*(writer(chat_id) for chat_id in chats), outage())
    assert sum(len(ids) for ids in posted.values()) == TALKS * PER_TALK

    # Once every post is published, the store's reads have passed them too.
    everything = {i for ids in posted.values() for i in ids}
    await wait_until(lambda: _true(everything <= _published_messages(tap)), timeout=60,
                     what="every post published after the outage")
    expected = await expected_bodies(settings.database_url, customer, last[0])
    await tap.wait_for(len(expected), "every event published after the outage")
    assert_published_as_expected(tap.received, expected)
    assert len(tap.received) > len(expected)  # the unconfirmed ones were published again
    for chat_id, ids in posted.items():  # per-talk order is the posting order
        seen = [r.body["data"]["id"] for r in tap.first_copies()
                if r.body["chat_id"] == chat_id and r.body["type"] == "message_created"
                and r.body["data"]["owner_type"] == "agent"]
        assert seen == ids
    await wait_until(lambda: _zero(outbox_size(db)), what="the outbox to drain")


def _published_messages(tap) -> set[str]:
    return {r.body["data"]["id"] for r in tap.received if r.body["type"] == "message_created"}


async def _true(value: bool) -> bool:
    return value


async def _zero(count) -> bool:
    return await count == 0
