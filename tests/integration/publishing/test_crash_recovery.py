"""Killed between commit and publish: after a restart nothing is missing.

Two places to die: after the projector committed a batch's outbox rows but before anything
was published, and after the broker received the publishes but before their confirms
reached the publisher (so it had not deleted the rows). A restart publishes every row still
in the outbox: nothing is lost, the second case repeats some, which dedupe removes."""

from __future__ import annotations

import asyncio
from collections import Counter
from uuid import uuid4

from tests.integration.publishing.caller import Caller
from tests.integration.publishing.conftest import via_proxy
from tests.integration.publishing.expected import (
    assert_published_as_expected,
    expected_bodies,
    stored_events,
)
from tests.integration.publishing.outbox_rows import outbox_count
from tests.support import wait_until

POSTS = 30


async def _post_many(caller: Caller, chat_id: str) -> int:
    last = 0
    for i in range(POSTS):
        _, last = await caller.post(chat_id, f"message {i}")
    return last


async def test_killed_after_the_outbox_commit_before_publishing(
        settings, db, talk_api, start_outbox_projector, start_publisher, open_tap):
    customer = uuid4()
    tap = await open_tap(f"{customer}.#")
    alice = Caller(talk_api, customer, uuid4())
    first = start_outbox_projector()  # the process's publisher has not published yet
    chat, _ = await alice.create_group(uuid4())
    last = await _post_many(alice, chat["id"])
    stored = await wait_until(lambda: _through(settings.database_url, customer, last),
                              what="the store's reads to pass the posts")

    async def all_committed() -> bool:
        return await outbox_count(db, customer) == len(stored)

    await wait_until(all_committed, what="the outbox rows committed")
    first.task.cancel()  # the process dies here
    await asyncio.gather(first.task, return_exceptions=True)
    assert tap.received == []

    start_outbox_projector()  # the restarted process
    start_publisher()
    expected = await expected_bodies(settings.database_url, customer, last)
    await tap.wait_for(len(expected), "everything published after the restart")
    assert_published_as_expected(tap.received, expected)
    await wait_until(lambda: _is_zero(outbox_count(db, customer)), what="the outbox drained")


async def test_killed_after_publishing_before_the_confirms(
        settings, amqp_settings, amqp_url, proxy, db, talk_api, outbox_projector,
        start_publisher, open_tap):
    customer = uuid4()
    tap = await open_tap(f"{customer}.#")
    alice = Caller(talk_api, customer, uuid4())
    # Patient: it must not give up on the held confirms by itself before the test kills it.
    through_proxy = via_proxy(amqp_settings, proxy, amqp_url).model_copy(
        update={"amqp_timeout": 60.0})
    first = start_publisher(through_proxy)
    chat, created_at = await alice.create_group(uuid4())
    created = len(await wait_until(lambda: _through(settings.database_url, customer, created_at),
                                   what="the creation readable"))
    await tap.wait_for(created, "the talk's creation published")
    await wait_until(lambda: _is_zero(outbox_count(db, customer)), what="confirmed")

    proxy.hold_replies()  # the broker gets the publishes; the confirms stay in the proxy
    last = await _post_many(alice, chat["id"])
    at_broker = await tap.wait_for(created + 1, "a post at the broker")  # the batch in flight

    async def all_committed() -> bool:
        return await outbox_count(db, customer) == POSTS  # and none confirmed, none deleted

    await wait_until(all_committed, what="the posts' outbox rows committed")
    proxy.cut()
    await first.kill()  # the process dies before the confirms arrive
    assert await outbox_count(db, customer) == POSTS
    in_flight = {r.message_id for r in at_broker[created:]}

    proxy.restore()
    start_publisher(through_proxy)  # the restarted process
    expected = await expected_bodies(settings.database_url, customer, last)
    await tap.wait_for(len(expected), "everything published after the restart")
    await wait_until(lambda: _is_zero(outbox_count(db, customer)), what="the outbox drained")
    assert_published_as_expected(tap.received, expected)
    copies = Counter(r.message_id for r in tap.received)
    repeated = {m for m, n in copies.items() if n > 1}
    posts = {b["event_id"] for b in expected[-POSTS:]}
    assert in_flight <= repeated <= posts  # what was unconfirmed went out again, once more
    assert all(copies[m] == 2 for m in repeated)


async def _through(url: str, customer, position: int):
    events = await stored_events(url, customer)
    return events if any(s.position == position for s in events) else None


async def _is_zero(count) -> bool:
    return await count == 0
