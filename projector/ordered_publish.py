"""Publishing a batch pipelined, in order, and learning which prefix the broker confirmed.

The publishes start as tasks in creation order; each queues its frames under the channel's
lock (FIFO) before the next one can, so the broker receives them in order, and their
confirms are awaited together. Nothing cancels a single publish while the others go on (a
per-publish timeout would let a later one through after an earlier one gave up, and a
consumer would then see them out of order): on the first failure, when no confirm has come
for ``stall_timeout`` seconds, or on ``stop``, every unfinished publish is cancelled in one
go, so what reached the broker is a prefix of the batch. The caller then keeps the
confirmed prefix and (after a failure) drops the connection and starts again after it.

One case keeps no order: a broker that nacks a publish but acks later ones (an internal
broker error); the nacked one is published again after them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aio_pika.abc import AbstractExchange, AbstractMessage


async def publish_in_order(exchange: AbstractExchange,
                           messages: Sequence[tuple[AbstractMessage, str]], *,
                           stall_timeout: float, stop: asyncio.Event,
                           ) -> tuple[int, BaseException | None]:
    """Publish ``(message, routing_key)`` pairs; returns how many, from the first, the broker
    confirmed, and the failure that stopped the rest (``None`` if none, or if ``stop``)."""
    tasks = [asyncio.create_task(exchange.publish(message, key, mandatory=False))
             for message, key in messages]
    progress, failed = asyncio.Event(), asyncio.Event()
    unfinished = [len(tasks)]

    def finished(task: asyncio.Task) -> None:
        unfinished[0] -= 1
        progress.set()
        if not task.cancelled() and task.exception() is not None:
            failed.set()

    for task in tasks:
        task.add_done_callback(finished)
    stalled = False
    try:
        while unfinished[0] and not failed.is_set() and not stop.is_set():
            progress.clear()
            if not await _progress_or_stop(progress, stop, stall_timeout):
                stalled = True
                break
    finally:
        for task in tasks:  # all at once: none of them starts sending after this
            if not task.done():
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    ok = [not task.cancelled() and task.exception() is None for task in tasks]
    confirmed = ok.index(False) if False in ok else len(tasks)
    if confirmed == len(tasks) or stop.is_set():
        return confirmed, None
    errors = [t.exception() for t in tasks if not t.cancelled() and t.exception() is not None]
    if errors:
        return confirmed, errors[0]
    if stalled:
        return confirmed, TimeoutError(f"no publish confirm for {stall_timeout}s")
    return confirmed, ConnectionError("a publish was cancelled: its channel closed")


async def _progress_or_stop(progress: asyncio.Event, stop: asyncio.Event, timeout: float) -> bool:
    waiters = {asyncio.create_task(progress.wait()), asyncio.create_task(stop.wait())}
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)
    finally:
        for waiter in waiters:
            waiter.cancel()
