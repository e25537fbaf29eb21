"""The publisher loses Postgres in the middle of a batch: the broker has the publishes and
its confirms are on the way when the publisher's connection is terminated, so it cannot
delete the confirmed rows. It starts again on a new connection (taking its lock again) and
publishes those rows once more: nothing lost, repeats that dedupe removes, order kept."""

from __future__ import annotations

from collections import Counter
from uuid import uuid4

from structlog.testing import capture_logs

from projector.publisher import PUBLISHER_LOCK
from tests.integration.backends import backend_alive, lock_holder, terminate_backend
from tests.integration.publishing.caller import Caller
from tests.integration.publishing.conftest import via_proxy
from tests.integration.publishing.outbox_rows import outbox_count
from tests.integration.publishing.test_confirm_failures import (
    all_confirmed,
    assert_each_once_in_order,
    posted_ids,
)
from tests.support import wait_until


async def test_the_publisher_loses_postgres_mid_batch_and_publishes_again(
        settings, amqp_settings, amqp_url, proxy, db, talk_api, outbox_projector,
        start_publisher, open_tap):
    url = settings.database_url
    customer = uuid4()
    tap = await open_tap(f"{customer}.#")
    alice = Caller(talk_api, customer, uuid4())
    # Patient with confirms: the held ones must not time out by themselves.
    patient = via_proxy(amqp_settings, proxy, amqp_url).model_copy(update={"amqp_timeout": 60.0})
    publisher = start_publisher(patient).publisher
    chat, created = await alice.create_group(uuid4())
    await wait_until(lambda: all_confirmed(url, db, customer, tap, created), timeout=30,
                     what="the creation published and confirmed")

    with capture_logs() as logs:
        proxy.hold_replies()  # the publishes reach the broker; their confirms wait
        posts = [(await alice.post(chat["id"], f"m {i}"))[0]["id"] for i in range(5)]
        await wait_until(lambda: _true(bool(set(posts) & posted_ids(tap))), timeout=30,
                         what="a batch of posts at the broker")
        holder = await lock_holder(url, PUBLISHER_LOCK)
        assert holder is not None, "the publisher holds its lock"
        assert await terminate_backend(url, holder["pid"]), "the publisher's backend was killed"
        await wait_until(lambda: _not(backend_alive(url, holder["pid"])),
                         what="the publisher's backend gone")
        await wait_until(lambda: _equals(outbox_count(db, customer), len(posts)), timeout=30,
                         what="every post in the outbox, none confirmed")
        in_flight = set(posts) & posted_ids(tap)  # the rest waits for their confirms
        proxy.restore()  # the confirms arrive; deleting the rows fails: Postgres is lost

        async def lost() -> bool:
            return any(e["event"] == "publisher.database_lost" for e in logs)

        await wait_until(lost, what="the publisher to notice it lost Postgres")

        async def relocked() -> bool:
            now = await lock_holder(url, PUBLISHER_LOCK)
            return now is not None and now["pid"] != holder["pid"]

        await wait_until(relocked, what="the publisher on a new connection with its lock")
        await wait_until(lambda: _equals(outbox_count(db, customer), 0), timeout=20,
                         what="the outbox drained")
    assert publisher.active.is_set()
    await assert_each_once_in_order(url, customer, tap)
    copies = Counter(r.body["data"]["id"] for r in tap.received if r.body["type"] == "message_created")
    assert all(copies[p] == 2 for p in in_flight), "the posts whose rows stayed went out again"
    assert all(copies[p] == 1 for p in set(posts) - in_flight)


async def _equals(count, expected: int) -> bool:
    return await count == expected


async def _true(value: bool) -> bool:
    return value


async def _not(value) -> bool:
    return not await value
