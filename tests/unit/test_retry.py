"""The back-off every retry loop uses: pauses grow by ``factor`` up to ``cap``, are shortened
by at most the ``jitter`` share, start again from ``first`` after ``reset()``."""

from __future__ import annotations

import asyncio
import random

import pytest

from services.retry import Backoff, pause


def test_pauses_double_up_to_the_cap_without_jitter() -> None:
    backoff = Backoff(0.2, 5.0, jitter=0)
    assert [backoff.next() for _ in range(8)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.next() == 0.2


def test_a_cap_given_with_one_pause_bounds_that_pause_only() -> None:
    backoff = Backoff(1.0, 5.0, jitter=0)
    assert [backoff.next() for _ in range(3)] == [1.0, 2.0, 4.0]
    assert backoff.next(cap=30.0) == 8.0
    assert backoff.next() == 5.0
    assert backoff.next(cap=0.5) == 0.5


def test_jitter_shortens_each_pause_by_at_most_its_share() -> None:
    random.seed(12)
    backoff = Backoff(1.0, 1.0, factor=1.0, jitter=0.25)
    pauses = [backoff.next() for _ in range(2000)]
    assert all(0.75 <= p <= 1.0 for p in pauses)
    assert max(pauses) - min(pauses) > 0.2  # spread, not a constant

    full = Backoff(0.01, 0.01, factor=1.0, jitter=1.0)
    pauses = [full.next() for _ in range(2000)]
    assert all(0 <= p <= 0.01 for p in pauses)
    assert min(pauses) < 0.001


def test_endless_failures_stay_at_the_cap() -> None:
    backoff = Backoff(0.001, 0.05, jitter=0)
    for _ in range(10_000):
        last = backoff.next()
    assert last == 0.05


@pytest.mark.parametrize(("first", "cap", "jitter"), [(0, 1, 0.5), (2, 1, 0.5), (1, 1, 1.5)])
def test_nonsense_is_refused(first: float, cap: float, jitter: float) -> None:
    with pytest.raises(ValueError):
        Backoff(first, cap, jitter=jitter)


async def test_a_pause_ends_when_stop_is_set() -> None:
    stop = asyncio.Event()
    waiting = asyncio.create_task(pause(3600, stop))
    stop.set()
    await asyncio.wait_for(waiting, 5)
