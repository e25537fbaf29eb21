"""Publisher confirms that fail on a real RabbitMQ: a queue that refuses (``x-overflow:
reject-publish``, so the broker nacks) and then acks the publishes after it, and a broker
whose confirms stop coming (a stall). Nothing is lost, the unconfirmed rows stay in the
outbox until published, and a consumer deduplicating by ``message_id`` sees every event once
and in order per talk."""

from __future__ import annotations

from collections import Counter
from uuid import uuid4

import aio_pika
from structlog.testing import capture_logs

from projector.publisher import PUBLISH_FAILURES
from tests.integration.publishing.caller import Caller
from tests.integration.publishing.conftest import via_proxy
from tests.integration.publishing.expected import stored_events, stored_events_all_readable
from tests.integration.publishing.outbox_rows import outbox_count
from tests.integration.publishing.tap import Tap
from tests.support import wait_until

LIMIT = 6  # messages the refusing queue holds


def failures() -> float:
    return PUBLISH_FAILURES._value.get()


async def assert_each_once_in_order(url: str, customer, tap: Tap) -> list[str]:
    """Every event of the customer published, once after dedupe, in order per talk; returns
    the event ids in the store's order."""
    stored = await wait_until(lambda: stored_events_all_readable(url, customer), timeout=60,
                              what="every event of the customer readable")
    ids = [str(s.event_id) for s in stored]
    await tap.wait_for(len(ids), "every event of the customer published")
    first = tap.first_copies()
    assert [r.message_id for r in first if r.message_id not in ids] == []
    assert {r.message_id for r in first} == set(ids)
    position = {str(s.event_id): s.position for s in stored}
    for chat_id in {r.body["chat_id"] for r in first}:
        order = [position[r.message_id] for r in first if r.body["chat_id"] == chat_id]
        assert order == sorted(order), f"talk {chat_id}: published out of order"
    return ids


async def test_a_nack_keeps_the_rest_and_acked_publishes_after_it_go_out_again(
        settings, amqp_settings, db, talk_api, outbox_projector, start_publisher, open_tap):
    customer = uuid4()
    tap = await open_tap(f"{customer}.#")
    alice = Caller(talk_api, customer, uuid4())
    refusing, refused_talk = await _refusing_queue(amqp_settings, tap)
    try:
        chat_x, _ = await alice.create_group(uuid4(), name="refused")
        chat_y, _ = await alice.create_group(uuid4(), name="accepted")
        await refusing.bind(amqp_settings.exchange, f"{customer}.{chat_x['id']}.#")
        for i in range(5):
            await alice.post(chat_x["id"], f"x {i}")
        last_y, through = [], 0
        for i in range(3):
            message, through = await alice.post(chat_y["id"], f"y {i}")
            last_y.append(message["id"])
        stored = await wait_until(
            lambda: _all_in_outbox(settings.database_url, db, customer, through), timeout=30,
            what="every event in the outbox before publishing")
        x_ids = [str(s.event_id) for s in stored if s.data.get("chat_id") == chat_x["id"]]
        refused = x_ids[LIMIT:]  # the talk's events beyond what the queue holds
        acked_after = [str(s.event_id) for s in stored if s.data.get("message_id") in last_y]
        assert refused and acked_after

        failed_before = failures()
        publisher = start_publisher().publisher
        # The batch holds everything: the broker acks up to the first refused event, nacks
        # it and the talk's later ones, and acks the other talk's posts after them.
        await wait_until(lambda: _true(failures() > failed_before), timeout=30, what="the nack seen")
        await tap.wait_for(len(stored), "the whole batch at the broker once")
        assert (await refusing.declare()).message_count == LIMIT
        left = len(refused) + len(acked_after)
        try:
            await wait_until(lambda: _equals(outbox_count(db, customer), left), timeout=30,
                             what="only the confirmed prefix deleted from the outbox")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {await outbox_count(db, customer)} rows, not {left}") from None
        assert publisher.published >= len(stored) - len(refused) - len(acked_after)

        await refusing.purge()  # room again: the next attempt is confirmed
        await wait_until(lambda: _equals(outbox_count(db, customer), 0), timeout=20,
                         what="the outbox drained")
        assert (await refusing.declare()).message_count == len(refused)
        await assert_each_once_in_order(settings.database_url, customer, tap)
        copies = Counter(r.message_id for r in tap.received)
        assert all(copies[m] >= 2 for m in refused), "the refused ones were published again"
        assert all(copies[m] >= 2 for m in acked_after), "acked after a nack: published again"
    finally:
        await refused_talk.close()


async def _refusing_queue(amqp_settings, tap: Tap):
    """An exclusive queue (gone with its connection) holding at most LIMIT messages and
    refusing more, so the broker nacks what is routed to it beyond that."""
    connection = await aio_pika.connect(amqp_settings.amqp_url)
    channel = await connection.channel()
    queue = await channel.declare_queue(
        f"{amqp_settings.exchange}.refusing.{uuid4().hex[:8]}", exclusive=True,
        arguments={"x-max-length": LIMIT, "x-overflow": "reject-publish"})
    return queue, connection


async def test_a_stalled_broker_is_given_up_on_and_published_to_again(
        settings, amqp_settings, amqp_url, proxy, db, talk_api, outbox_projector,
        start_publisher, open_tap):
    customer = uuid4()
    tap = await open_tap(f"{customer}.#")
    alice = Caller(talk_api, customer, uuid4())
    stalling = via_proxy(amqp_settings, proxy, amqp_url).model_copy(update={"amqp_timeout": 1.0})
    start_publisher(stalling)
    chat, created = await alice.create_group(uuid4())
    await wait_until(lambda: all_confirmed(settings.database_url, db, customer, tap, created),
                     timeout=30, what="the creation published and confirmed")

    with capture_logs() as logs:
        proxy.hold_replies()  # the broker takes the publishes; no confirm comes back
        posts = [(await alice.post(chat["id"], f"m {i}"))[0]["id"] for i in range(5)]
        await wait_until(lambda: _true(bool(set(posts) & posted_ids(tap))), timeout=30,
                         what="a batch of posts at the broker")

        def stalled() -> bool:
            return any(e["event"] == "amqp.connection_lost" and "no publish confirm" in e["error"]
                       for e in logs)

        await wait_until(lambda: _true(stalled()), what="the publisher giving up on the stall")
        # What went out before the stall; the rest waits in the outbox (no new connection
        # can be made while the broker's replies are held).
        in_flight = set(posts) & posted_ids(tap)
        # Nothing confirmed, nothing deleted: every post's row is (or comes) in the outbox.
        await wait_until(lambda: _equals(outbox_count(db, customer), len(posts)), timeout=30,
                         what="every post in the outbox")
        proxy.restore()
        await wait_until(lambda: _equals(outbox_count(db, customer), 0), timeout=20,
                         what="the outbox drained")
    await assert_each_once_in_order(settings.database_url, customer, tap)
    copies = Counter(r.body["data"]["id"] for r in tap.received if r.body["type"] == "message_created")
    assert all(copies[p] == 2 for p in in_flight), "each unconfirmed post published once more"
    assert all(copies[p] == 1 for p in set(posts) - in_flight)


async def all_confirmed(url: str, db, customer, tap: Tap, through: int) -> bool:
    """Every event of the customer through position ``through`` at the tap, and none left in
    the outbox."""
    stored = await stored_events(url, customer)
    if not any(s.position == through for s in stored):
        return False  # the store's reads are held back (an open transaction on the server)
    return ({str(s.event_id) for s in stored} <= {r.message_id for r in tap.received}
            and await outbox_count(db, customer) == 0)


def posted_ids(tap: Tap) -> set[str]:
    """The ids of the messages whose creation reached the tap."""
    return {r.body["data"]["id"] for r in tap.received if r.body["type"] == "message_created"}


async def _all_in_outbox(url, db, customer, through: int):
    stored = await stored_events(url, customer)
    if not any(s.position == through for s in stored):
        return None
    return stored if await outbox_count(db, customer) == len(stored) else None


async def _true(value: bool) -> bool:
    return value


async def _equals(count, expected: int) -> bool:
    return await count == expected
