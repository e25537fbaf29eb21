"""The outbox computes ``data`` and ``audience`` in memory from the rows a batch starts from:
the same bodies whether the projector follows event by event or catches up in batches that
cut through transactions."""

from __future__ import annotations

import asyncio
from uuid import uuid4

from projector.outbox import Outbox
from projector.runner import Projector
from tests.integration.conftest import RunningProjector
from tests.integration.publishing.expected import (
    assert_oracle_as_the_api_answers,
    assert_published_as_expected,
    expected_bodies,
)
from tests.integration.publishing.history import make_history


async def test_catching_up_in_small_batches_publishes_the_same(
        settings, talk_api, start_publisher, open_tap):
    customer = uuid4()
    tap = await open_tap(f"{customer}.#")
    last = await make_history(talk_api, customer)  # no projector yet: it will catch up
    expected = await expected_bodies(settings.database_url, customer, last)

    outbox = Outbox()
    small = settings.model_copy(update={"projector_batch_size": 4})
    running = RunningProjector(Projector(small, before_batch=outbox.before_batch,
                                         after_batch=outbox.after_batch))
    try:
        start_publisher()
        await tap.wait_for(len(expected), "the history published")
        assert_published_as_expected(tap.received, expected)
        await assert_oracle_as_the_api_answers(talk_api, settings.database_url, customer, last)
    finally:
        await asyncio.wait_for(running.close(), 15)


async def test_following_live_publishes_the_same(settings, talk_api, outbox_projector,
                                                 start_publisher, open_tap):
    customer = uuid4()
    tap = await open_tap(f"{customer}.#")
    start_publisher()
    last = await make_history(talk_api, customer)
    expected = await expected_bodies(settings.database_url, customer, last)
    await tap.wait_for(len(expected), "the history published")
    assert_published_as_expected(tap.received, expected)
    await assert_oracle_as_the_api_answers(talk_api, settings.database_url, customer, last)
