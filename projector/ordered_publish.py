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
broker error); the nacked one is published again after them. A nack can also come before
the acks of earlier publishes (a refusing queue answers at once, a stream queue once it has
written): the publishes before the first failed one are waited for (up to
``stall_timeout``) before the rest are cancelled, so the confirmed prefix is not cut short.
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
    if not messages:
        return 0, None
    loop = asyncio.get_running_loop()
    tasks = [asyncio.create_task(exchange.publish(message, key, mandatory=False))
             for message, key in messages]
    # One future for the batch, settled by the last publish to finish or the first to fail,
    # and one waiter for ``stop``: the confirms cost no task or wake-up each.
    settled: asyncio.Future[None] = loop.create_future()
    unfinished = [len(tasks)]
    last_progress = [loop.time()]

    def finished(task: asyncio.Task) -> None:
        unfinished[0] -= 1
        last_progress[0] = loop.time()
        failed = not task.cancelled() and task.exception() is not None
        if (failed or not unfinished[0]) and not settled.done():
            settled.set_result(None)

    for task in tasks:
        task.add_done_callback(finished)
    stopper = asyncio.ensure_future(stop.wait())
    stalled = False
    try:
        while not settled.done() and not stop.is_set():
            remaining = last_progress[0] + stall_timeout - loop.time()
            if remaining <= 0:
                stalled = True
                break
            await asyncio.wait({settled, stopper}, timeout=remaining,
                               return_when=asyncio.FIRST_COMPLETED)
        if settled.done() and not stop.is_set():
            await _settle_before_first_failure(tasks, stall_timeout)
    finally:
        stopper.cancel()
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


async def _settle_before_first_failure(tasks: list[asyncio.Task], timeout: float) -> None:
    """A nack may come before the acks of earlier publishes (a queue that refuses answers at
    once, a stream queue confirms once it has written): wait for the publishes before the
    first failed one to be confirmed too, so the prefix counted is the one the broker holds."""
    failed = [i for i, task in enumerate(tasks)
              if task.done() and not task.cancelled() and task.exception() is not None]
    earlier = [task for task in tasks[:failed[0]] if not task.done()] if failed else []
    if earlier:
        await asyncio.wait(earlier, timeout=timeout)
