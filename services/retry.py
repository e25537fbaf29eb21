"""Back-off with jitter: the one way every loop here waits before trying again.

A :class:`Backoff` hands out the pause before each new attempt: ``first``, then ``factor``
times the previous one, never more than ``cap``; ``reset()`` after a success starts again
from ``first``. Each pause is shortened by a random share of at most ``jitter`` (0: exact
pauses; 1: "full jitter", anywhere between 0 and the pause), so that processes which failed
together (every service when Postgres restarts, racing writers on one stream) do not all
come back at the same instant.

    backoff = Backoff(first=0.2, cap=5.0)
    while not stop.is_set():
        try:
            await run_session()
            backoff.reset()
        except ConnectionError as exc:
            delay = backoff.next()
            log.warning("lost", error=str(exc), retry_in=delay)
            await pause(delay, stop)
"""

from __future__ import annotations

import asyncio
import random

from services.stopping import sleep_or_stop

MAX_DOUBLINGS = 64  # far beyond any cap; keeps ``factor ** n`` a finite float


class Backoff:
    """Growing pauses between attempts, with jitter (see the module's docstring)."""

    __slots__ = ("first", "cap", "factor", "jitter", "attempt")

    def __init__(self, first: float, cap: float, *, factor: float = 2.0,
                 jitter: float = 0.5) -> None:
        if not 0 < first <= cap:
            raise ValueError(f"0 < first <= cap, got first={first} cap={cap}")
        if not 0 <= jitter <= 1:
            raise ValueError(f"jitter is a share between 0 and 1, got {jitter}")
        self.first = first
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self.attempt = 0  # pauses handed out since the last reset

    def next(self, *, cap: float | None = None) -> float:
        """The pause before the next attempt (``cap`` overrides the usual one, for a
        failure that deserves a longer or shorter wait)."""
        ceiling = self.cap if cap is None else cap
        pause = min(ceiling, self.first * self.factor ** self.attempt)
        self.attempt = min(self.attempt + 1, MAX_DOUBLINGS)
        return round(pause * (1 - self.jitter * random.random()), 6)

    def reset(self) -> None:
        """An attempt succeeded: the next failure waits ``first`` again."""
        self.attempt = 0


async def pause(seconds: float, stop: asyncio.Event | None = None) -> None:
    """Wait ``seconds``, or less if ``stop`` is set meanwhile."""
    if stop is None:
        await asyncio.sleep(seconds)
    else:
        await sleep_or_stop(stop, seconds)
