"""Background loops stop when their service stops, even when the stop's cancellation arrives
just as the connection pool hands the loop a connection (on Python 3.11 ``asyncio.wait_for``
inside the pool then drops the cancellation: the idempotency purge went back to its hour-long
sleep and held its app's shutdown)."""

from __future__ import annotations

import asyncio

from command_api.idempotency import purge_periodically
from services.db import Database, make_pool
from services.tasks import cancel_and_wait
from tests.support import wait_until


async def waiting_for_a_connection(pool) -> bool:
    return pool.get_stats().get("requests_waiting", 0) >= 1


async def test_the_purge_stops_when_cancelled_as_it_gets_its_connection(settings):
    pool = make_pool(settings, min_size=1, max_size=1, name="talk-test-stopping")
    await pool.open(wait=True)
    try:
        held = await pool.getconn()
        purger = asyncio.create_task(purge_periodically(Database(pool)))
        await wait_until(lambda: waiting_for_a_connection(pool), what="the purge to queue")
        await pool.putconn(held)  # handed to the waiting purge, which has not run since ...
        async with asyncio.timeout(10):  # ... as it is stopped
            await cancel_and_wait(purger)
        assert purger.done()
    finally:
        await pool.close()
