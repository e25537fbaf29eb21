"""Reading a customer's bodies from the stream queue from its first offset, as a gateway
resuming would: shared by the stream-queue tests."""

from __future__ import annotations

import asyncio

import aio_pika
import orjson


async def customer_bodies_from_first(queue: aio_pika.abc.AbstractQueue, customer,
                                     count: int, timeout: float = 15) -> list[dict]:
    """The first ``count`` bodies of ``customer`` in the stream, read from offset ``first``
    (the queue's channel needs a prefetch)."""
    ours: list[dict] = []
    done = asyncio.Event()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        body = orjson.loads(message.body)
        if body["customer_id"] == str(customer):
            ours.append(body)
            if len(ours) == count:
                done.set()
        await message.ack()

    await queue.consume(on_message, arguments={"x-stream-offset": "first"})
    await asyncio.wait_for(done.wait(), timeout)
    return ours
