"""The publisher beside the projector (``talk projector``, ``talk up``) is woken in process when
a batch commits: with the polls an hour apart and the ``talk_projected`` NOTIFY ignored while
the projector beside it is active, only that direct wake-up can publish a new event."""

from __future__ import annotations

import asyncio
from uuid import uuid4

from projector.service import start_projection
from services.settings import Settings
from tests.factories import new_chat_append
from tests.support import wait_until


async def test_a_batch_committed_beside_the_publisher_wakes_it_directly(
        amqp_settings: Settings, store, open_tap) -> None:
    settings = amqp_settings.model_copy(update={"projector_poll_interval": 3600.0})
    stop = asyncio.Event()
    projection = start_projection(settings, stop)
    publisher = projection.publisher
    assert publisher is not None
    try:
        await asyncio.wait_for(projection.projector.active.wait(), 15)
        await asyncio.wait_for(publisher.connected.wait(), 15)
        commits: list[int] = []
        projection.projector.on_commit.append(lambda: commits.append(1))
        for i in range(3):  # each time both wait for a wake-up (the first reads are done)
            customer = uuid4()
            tap = await open_tap(f"{customer}.#")
            append, metadata = new_chat_append(customer_id=customer)
            await store.append([append], metadata)
            [received] = await tap.wait_for(1, f"event {i + 1} published, polls an hour apart")
            assert received.body["type"] == "chat_created"
        assert commits, "the projector beside the publisher applied the events"
        await wait_until(lambda: _true(publisher.lag == 0), what="the outbox drained")
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*projection.tasks), 15)


async def _true(value: bool) -> bool:
    return value
