"""A consumer of Talk's published stream to copy: read the RabbitMQ stream queue with
aio-pika from an offset, drop repeats by ``message_id`` (delivery is at least once), and
remember the offset to resume from.

    python examples/stream_consumer.py --amqp-url amqp://guest:guest@127.0.0.1:5672/ \\
        --queue talk.events.stream --offset first [--max-messages N] [--idle-exit S]

``--offset``: ``first``, ``last``, ``next``, a number (the offset after the last one you
processed), or an ISO timestamp. Each new event is printed as one JSON line on stdout
(``offset``, ``message_id``, ``type``, ``customer_id``, ``chat_id``, ``data_id``: the
resource's id); repeats are counted
on stderr. Store the last printed ``offset`` and restart with ``--offset <it + 1>``. The
message bodies are described by ``projector/asyncapi.json``. Needs aio-pika only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import OrderedDict
from datetime import datetime

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

PREFETCH = 200  # a stream consumer must set one
REMEMBERED_IDS = 100_000  # repeats come within a publisher batch of the original


def offset_argument(text: str) -> int | str | datetime:
    if text in ("first", "last", "next"):
        return text
    if text.isdigit():
        return int(text)
    return datetime.fromisoformat(text)


class Consumer:
    def __init__(self, max_messages: int) -> None:
        self.max_messages = max_messages
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.new = self.repeats = 0
        self.done = asyncio.Event()
        self.last_message = asyncio.get_running_loop().time()

    def is_repeat(self, message_id: str) -> bool:
        if message_id in self.seen:
            return True
        self.seen[message_id] = None
        if len(self.seen) > REMEMBERED_IDS:
            self.seen.popitem(last=False)
        return False

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        self.last_message = asyncio.get_running_loop().time()
        offset = (message.headers or {}).get("x-stream-offset")
        if message.message_id and self.is_repeat(message.message_id):
            self.repeats += 1
            print(f"repeat of {message.message_id} dropped", file=sys.stderr, flush=True)
        else:
            body = json.loads(message.body)
            print(json.dumps({"offset": offset, "message_id": message.message_id,
                              "type": body["type"], "customer_id": body["customer_id"],
                              "chat_id": body["chat_id"], "data_id": body["data"]["id"]}),
                  flush=True)
            self.new += 1
        await message.ack()  # on a stream, acks only return prefetch credit
        if self.max_messages and self.new >= self.max_messages:
            self.done.set()


async def consume(args: argparse.Namespace) -> int:
    connection = await aio_pika.connect(args.amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=PREFETCH)
        queue = await channel.get_queue(args.queue, ensure=True)  # passive: it must exist
        consumer = Consumer(args.max_messages)
        await queue.consume(consumer.on_message,
                            arguments={"x-stream-offset": offset_argument(args.offset)})
        loop = asyncio.get_running_loop()
        while not consumer.done.is_set():
            if args.idle_exit and loop.time() - consumer.last_message > args.idle_exit:
                break
            try:
                await asyncio.wait_for(consumer.done.wait(), 0.2)
            except TimeoutError:
                pass
        print(f"{consumer.new} events, {consumer.repeats} repeats dropped", file=sys.stderr,
              flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--amqp-url", required=True)
    parser.add_argument("--queue", default="talk.events.stream")
    parser.add_argument("--offset", default="first")
    parser.add_argument("--max-messages", type=int, default=0,
                        help="exit after this many new events (0: run until stopped)")
    parser.add_argument("--idle-exit", type=float, default=0,
                        help="exit after this many seconds without a message (0: never)")
    try:
        return asyncio.run(consume(parser.parse_args()))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
