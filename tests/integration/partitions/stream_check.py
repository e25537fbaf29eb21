"""What the stream queue holds of one customer, read from its first offset as a gateway
resuming would, checked against the store: every event published, once after dedupe by
``message_id``, nothing else, and each talk's events in the order of their positions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from uuid import UUID

import aio_pika
import orjson

from tests.integration.publishing.expected import stored_events_all_readable
from tests.support import wait_until


@dataclass(frozen=True)
class Copy:
    """One message read from the stream queue."""

    message_id: str
    body: dict


async def read_from_first(amqp_url: str, stream_queue: str, customer: UUID,
                          wanted: set[str], timeout: float = 30) -> list[Copy]:
    """The customer's messages in the stream, in stream order, read from offset ``first``
    until every id of ``wanted`` has been seen (duplicates kept)."""
    copies: list[Copy] = []
    seen: set[str] = set()
    done = asyncio.Event()

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        body = orjson.loads(message.body)
        if body["customer_id"] == str(customer):
            copies.append(Copy(str(message.message_id), body))
            seen.add(str(message.message_id))
            if wanted <= seen:
                done.set()
        await message.ack()

    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=200)  # a stream queue needs a prefetch
        queue = await channel.declare_queue(stream_queue, passive=True)
        await queue.consume(on_message, arguments={"x-stream-offset": "first"})
        try:
            await asyncio.wait_for(done.wait(), timeout)
        except TimeoutError:
            missing = wanted - seen
            raise AssertionError(f"{len(missing)} of {len(wanted)} events never reached the stream"
                                 f" queue (e.g. {sorted(missing)[:3]})") from None
    return copies


async def assert_stream_holds_each_once_in_order(amqp_url: str, stream_queue: str, url: str,
                                                 customer: UUID) -> dict[str, int]:
    """Every stored event of ``customer`` is in the stream queue, once after dedupe by
    ``message_id``, nothing else is, and each talk's first copies come in the store's global
    order, (tx_id, position): not the order of positions alone, since two posts into one
    talk (each its own message stream) may commit in the other order than they drew their
    positions. Returns how many messages were read and how many were duplicates."""
    stored = await wait_until(lambda: stored_events_all_readable(url, customer), timeout=60,
                              what="every event of the customer readable in order")
    position = {str(s.event_id): s.position for s in stored}
    rank = {s.position: i for i, s in enumerate(stored)}  # the place in the global order
    copies = await read_from_first(amqp_url, stream_queue, customer, set(position))
    assert all(c.message_id == c.body["event_id"] for c in copies), "message_id is not the event id"
    unknown = {c.message_id for c in copies} - set(position)
    assert not unknown, f"published but not stored: {sorted(unknown)[:5]}"
    first: dict[str, Copy] = {}
    for copy in copies:
        first.setdefault(copy.message_id, copy)
    assert set(first) == set(position)
    for copy in first.values():
        assert copy.body["position"] == position[copy.message_id], copy.body
    by_talk: dict[str, list[int]] = {}
    for copy in first.values():  # dicts keep insertion order: the stream's order
        by_talk.setdefault(copy.body["chat_id"], []).append(copy.body["position"])
    for chat_id, order in by_talk.items():
        assert order == sorted(order, key=rank.__getitem__), (
            f"talk {chat_id}: positions {order} out of the global order on the stream")
    return {"read": len(copies), "duplicates": len(copies) - len(first), "talks": len(by_talk)}

