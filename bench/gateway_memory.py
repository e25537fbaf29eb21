"""The gateway's memory under traffic: does it stay flat? ``python -m bench.gateway_memory``

The live path of one gateway process without the network: a hub with ``--sockets`` idle
subscribed connections (a socket whose writes go nowhere), fed ``--messages`` stream
messages of ``--talks`` talks, as the RabbitMQ feed hands them on. Python's traced memory
is printed every ``--every`` messages, for the hub as it is and, side by side in the same
run, for the hub with the dedupe memory it had before (the 65,536 last message ids kept as
strings): the baseline. Flat means: no growth from one reading to the next once the dedupe
memory is full.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tracemalloc
from collections import deque
from uuid import uuid4

from services.gateway.connections import Connection
from services.gateway.feed import FeedMessage
from services.gateway.hub import Hub
from services.gateway.inprocess_feed import InProcessFeed
from services.gateway.tokens import ResumeTokens


class StringIds:
    """The dedupe memory before: the last ``capacity`` ids as strings."""

    def __init__(self, capacity: int = 65_536) -> None:
        self._order: deque[str] = deque(maxlen=capacity)
        self._ids: set[str] = set()

    def seen(self, message_id: str) -> bool:
        if message_id in self._ids:
            return True
        if len(self._order) == self._order.maxlen:
            self._ids.discard(self._order[0])
        self._order.append(message_id)
        self._ids.add(message_id)
        return False


class NowhereSocket:
    async def send_frame(self, frame: bytes, opcode: object) -> None:
        return None


async def run(label: str, args: argparse.Namespace, baseline: bool) -> list[float]:
    gc.collect()
    tracemalloc.start()
    hub = Hub(InProcessFeed(), tokens=ResumeTokens("bench-secret-0123456789abcdef0123"),
              send_buffer_bytes=262_144, locate_timeout=5.0, max_replays=64,
              max_sockets_per_agent=20)
    if baseline:
        hub._recent = StringIds()  # noqa: SLF001 - the bench swaps the part it compares
    customer = str(uuid4())
    agents = [str(uuid4()) for _ in range(args.sockets)]
    for agent in agents:
        conn = Connection(NowhereSocket(), None, customer, agent, 262_144)  # type: ignore[arg-type]
        conn.topics[f"agent:{agent}"] = -1
        hub.add(conn)
    talks = [(str(uuid4()), agents[i % len(agents):i % len(agents) + 10])
             for i in range(args.talks)]
    readings = []
    for n in range(1, args.messages + 1):
        chat_id, audience = talks[n % len(talks)]
        hub.dispatch(FeedMessage(offset=n, message_id=str(uuid4()), type="message_created",
                                 customer_id=customer, chat_id=chat_id,
                                 audience=frozenset(audience),
                                 data={"id": str(uuid4()), "text": "hello " * 10}))
        if n % 500 == 0:
            await asyncio.sleep(0)  # the sockets' writers run
        if n % args.every == 0:
            await asyncio.sleep(0)
            gc.collect()
            readings.append(tracemalloc.get_traced_memory()[0] / 1e6)
    tracemalloc.stop()
    print(f"{label:>32}: " + "  ".join(f"{r:6.2f}" for r in readings) + "  MB")
    return readings


async def main_async(args: argparse.Namespace) -> None:
    print(f"traced MB after every {args.every:,} messages ({args.sockets} sockets, talks of "
          f"10, {args.talks} talks)")
    after = await run("hub now (64-bit hashes, 16,384)", args, baseline=False)
    before = await run("before (id strings, 65,536)", args, baseline=True)
    half = len(after) // 2
    for label, readings in (("now", after), ("before", before)):
        growth = readings[-1] - readings[half]
        print(f"{label}: {growth:+.2f} MB over the second half "
              f"({(readings[-1] - readings[0]):+.2f} MB from the first reading)")
    print(f"plateau now / before: {after[-1]:.2f} / {before[-1]:.2f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=25_000)
    parser.add_argument("--sockets", type=int, default=200)
    parser.add_argument("--talks", type=int, default=1_000)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
