"""Several ``talk projector`` processes publishing, sharing ``TALK_PROJECTOR_PARTITIONS``: they
settle on an even share (the gauges say so and ``pg_locks`` agrees, each partition's lock
held by one backend); one is killed (SIGKILL) while agents post and its partitions are taken
over by the others. Once the writes stop and every partition has caught up, each event was
applied once by a chain of batches of its partition (batches.py), the read tables equal a
rebuild from the history, and the stream queue, read from its first offset, holds
every event once after dedupe by ``message_id``, each talk's in order."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
from aiohttp.test_utils import TestClient, TestServer

from events.envelope import START
from services.up import build_up_app
from tests.history import assert_read_tables_match_history
from tests.integration.partitions import batches, progress
from tests.integration.partitions.fleet import Fleet, Member
from tests.integration.partitions.stream_check import assert_stream_holds_each_once_in_order
from tests.integration.partitions.writers import Posters
from tests.integration.verifying import verify_live_tables
from tests.support import wait_until

AFTER_TAKEOVER = 40  # posts written once the survivors own everything, before the writes stop


@pytest.mark.parametrize(("processes", "partitions"), [(2, 4), (3, 8)])
async def test_an_even_share_and_a_killed_process_taken_over_under_live_writes(
        fresh_database_url, settings, stream_names, processes, partitions):
    url = fresh_database_url
    # The API publishes nothing, and knows how the projection is laid out (X-Talk-Min-Position).
    # A small pool: the processes take a few connections per partition on a shared server.
    local = settings.model_copy(update={"database_url": url, "projector_partitions": partitions,
                                         "db_pool_max_size": 4})
    await batches.install(url)
    fleet = Fleet(url, partitions, batch_size=20, talk=stream_names)
    customer = uuid4()
    try:
        await fleet.start(processes)
        shares = await fleet.wait_evenly_shared()

        async with TestClient(TestServer(build_up_app(local))) as client:
            posters = Posters(client, customer)
            await posters.cover(partitions)
            stop = asyncio.Event()
            writing = asyncio.create_task(posters.run(stop))
            try:
                # Every partition under way: each has projected (and so queued to publish).
                await wait_until(lambda: _each_projected(url, partitions), timeout=30,
                                 what="every partition projecting")
                victim = max(shares, key=lambda m: shares[m])
                await fleet.kill(victim)
                survivors = await fleet.wait_evenly_shared()
                assert sum(survivors.values()) == partitions and victim not in survivors
                mark = posters.posted
                await wait_until(lambda: _true(posters.posted >= mark + AFTER_TAKEOVER),
                                 timeout=30, what="writes after the takeover")
            finally:
                stop.set()
                await writing

        await wait_until(lambda: progress.all_caught_up(url, partitions), timeout=60,
                         what="every partition at its last event")
        await wait_until(lambda: _no_lag_reported(fleet), timeout=15,
                         what="each owner reporting its partitions' lag as 0")
        wrong, per_partition = await batches.problems(url, partitions)
        assert not wrong, wrong
        await assert_read_tables_match_history(url)
        await _verify(local)
        stats = await assert_stream_holds_each_once_in_order(
            stream_names["amqp_url"], stream_names["stream_queue"], url, customer)
        print(f"{processes} processes, {partitions} partitions: {posters.posted} posts into"
              f" {len(posters.talks)} talks; batches per partition {per_partition}; stream {stats}")
    finally:
        await fleet.close()


async def _each_projected(url: str, partitions: int) -> bool:
    return all(cp > START for cp in (await progress.checkpoints(url, partitions)).values())


async def _no_lag_reported(fleet: Fleet) -> bool:
    """Every partition's owner (by its lock) exports a lag of 0 events for it."""
    holders = await fleet.lock_holders()
    for partition in range(fleet.partitions):
        owner = holders.get(partition, [None])[0]
        if not isinstance(owner, Member):
            return False
        if (await owner.partition_lag()).get(partition) != 0:
            return False
    return True


async def _verify(settings) -> None:
    """``talk projections verify``, in process: the read tables equal a rebuild."""
    report = await verify_live_tables(settings)
    assert report.identical, [str(d) for d in report.differences]


async def _true(value: bool) -> bool:
    return value
