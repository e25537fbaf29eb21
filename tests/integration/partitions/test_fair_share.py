"""When ceil(N / processes) leaves a process idle (4 partitions over 3 processes: 2, 2, 0),
the busiest gives one up to it (2, 1, 1); when one stops, the two left take its share
(2, 2); a process that joins gets its part (2, 1, 1 again)."""

from __future__ import annotations

from tests.integration.partitions.fleet import Fleet


async def test_four_partitions_over_three_processes_are_shared_two_one_one(fresh_database_url):
    fleet = Fleet(fresh_database_url, 4)
    try:
        first = await fleet.start(1)
        assert sorted((await fleet.wait_evenly_shared()).values()) == [4]
        await fleet.start(2)  # they join a process holding everything
        assert sorted((await fleet.wait_evenly_shared(timeout=20)).values()) == [1, 1, 2]
        await fleet.stop(first[0])
        assert sorted((await fleet.wait_evenly_shared()).values()) == [2, 2]
        await fleet.start(1)
        assert sorted((await fleet.wait_evenly_shared(timeout=20)).values()) == [1, 1, 2]
    finally:
        await fleet.close()
