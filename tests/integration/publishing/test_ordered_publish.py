"""``publish_in_order`` (no broker: a stand-in exchange whose confirms the test controls):
it reports the confirmed prefix, stops everything on the first failure, on a stall and on
``stop``."""

from __future__ import annotations

import asyncio

import pytest

from projector.ordered_publish import publish_in_order
from tests.support import wait_until


class FakeExchange:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.returned: list[str] = []
        self.confirms: dict[str, asyncio.Future] = {}

    async def publish(self, message: str, routing_key: str, *, mandatory: bool) -> None:
        self.sent.append(message)
        self.confirms[message] = asyncio.get_running_loop().create_future()
        await self.confirms[message]
        self.returned.append(message)

    def confirm(self, *messages: str) -> None:
        for m in messages:
            self.confirms[m].set_result(None)

    def fail(self, message: str, exc: Exception) -> None:
        self.confirms[message].set_exception(exc)


def batch(n: int) -> list[tuple[str, str]]:
    return [(f"m{i}", "key") for i in range(n)]


async def run(exchange: FakeExchange, n: int, stop: asyncio.Event | None = None,
              stall: float = 5.0) -> asyncio.Task:
    task = asyncio.create_task(publish_in_order(exchange, batch(n), stall_timeout=stall,
                                                stop=stop or asyncio.Event()))
    await wait_until(lambda: _true(len(exchange.sent) == n), what="every publish sent")
    return task


async def test_all_confirmed():
    exchange = FakeExchange()
    task = await run(exchange, 5)
    assert exchange.sent == [f"m{i}" for i in range(5)]  # in order
    exchange.confirm(*exchange.sent)
    assert await task == (5, None)


async def test_a_failure_keeps_the_prefix_and_cancels_the_rest():
    exchange = FakeExchange()
    task = await run(exchange, 5)
    exchange.confirm("m0", "m1", "m3")  # m3 is confirmed, but after a gap it does not count
    boom = ConnectionError("channel closed")
    exchange.fail("m2", boom)
    confirmed, failure = await task
    assert (confirmed, failure) == (2, boom)
    assert exchange.confirms["m4"].cancelled()


async def test_a_stall_is_a_timeout():
    exchange = FakeExchange()
    task = await run(exchange, 3, stall=0.05)
    exchange.confirm("m0")
    confirmed, failure = await task
    assert confirmed == 1 and isinstance(failure, TimeoutError)
    assert all(exchange.confirms[m].cancelled() for m in ("m1", "m2"))


async def test_stop_keeps_the_prefix_without_a_failure():
    exchange, stop = FakeExchange(), asyncio.Event()
    task = await run(exchange, 4, stop=stop)
    exchange.confirm("m0", "m1")
    await wait_until(lambda: _true(len(exchange.returned) == 2), what="two publishes returned")
    stop.set()
    assert await task == (2, None)


@pytest.mark.parametrize("n", [0, 1])
async def test_small_batches(n):
    exchange = FakeExchange()
    task = await run(exchange, n)
    exchange.confirm(*exchange.sent)
    assert await task == (n, None)


async def _true(value: bool) -> bool:
    return value
