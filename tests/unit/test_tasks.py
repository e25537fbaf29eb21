"""Stopping a background task ends it even when a cancellation is lost on the way."""

from __future__ import annotations

import asyncio

import pytest

from services.tasks import cancel_and_wait


async def until_cancelled() -> None:
    """What a background loop's long wait looks like to its stopper."""
    await asyncio.Event().wait()


async def test_a_task_that_lost_its_cancellation_is_cancelled_again():
    waiting, lost = asyncio.Event(), asyncio.Event()

    async def loop_that_loses_one_cancellation() -> None:
        try:
            waiting.set()
            await until_cancelled()
        except asyncio.CancelledError:
            lost.set()  # as asyncio.wait_for does on Python 3.11 when the result is ready
        await until_cancelled()  # back to its long wait, as the purge loop went

    task = asyncio.create_task(loop_that_loses_one_cancellation())
    await waiting.wait()
    async with asyncio.timeout(10):
        await cancel_and_wait(task, again_after=0.05)
    assert lost.is_set() and task.cancelled()


@pytest.mark.parametrize("outcome", ["returns", "raises"])
async def test_a_task_ending_its_own_way_is_waited_for_and_its_outcome_consumed(outcome):
    waiting = asyncio.Event()

    async def body() -> int:
        try:
            waiting.set()
            await until_cancelled()
        except asyncio.CancelledError:
            if outcome == "raises":
                raise RuntimeError("failed while stopping") from None
        return 1

    task = asyncio.create_task(body())
    await waiting.wait()
    async with asyncio.timeout(10):
        await cancel_and_wait(task)
    assert task.done() and not task.cancelled()


async def test_nothing_to_stop():
    await cancel_and_wait(None)


async def test_the_callers_own_cancellation_is_not_swallowed():
    stubborn_for_now = True
    swallowed, cancelled_again = 0, asyncio.Event()

    async def stubborn() -> None:
        nonlocal swallowed
        while stubborn_for_now:
            try:
                await until_cancelled()
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed >= 2:
                    cancelled_again.set()

    task = asyncio.create_task(stubborn())
    stopper = asyncio.create_task(cancel_and_wait(task, again_after=0.05))
    async with asyncio.timeout(10):
        await cancelled_again.wait()  # the stopper is at work, cancelling again
    stopper.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    assert not task.done()
    stubborn_for_now = False
    task.cancel()
    async with asyncio.timeout(10):
        await asyncio.wait({task})
