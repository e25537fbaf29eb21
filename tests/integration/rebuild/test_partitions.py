"""Rebuild and verify with the projection in 4 partitions whose checkpoints differ: the
copy holds, per partition, exactly its talks' events up to its own checkpoint (so it equals
the live tables, though the store holds more), the switch leaves the checkpoints as they
are, and both hold while the partitions' projectors run and writes go on."""

from __future__ import annotations

import asyncio

from bench.history import HistoryWriter
from events.envelope import START
from projector.checkpoints import set_checkpoints
from projector.partition_share import partition_lock_key
from projector.rebuild import rebuild_read_model
from projector.verify import verify_read_model
from tests.integration.rebuild.conftest import Quiet

N = 4


async def start_partitions(live, which: list[int]) -> None:
    for p in which:
        await live.start_projector(partition=p, partitions=N, lock_key=partition_lock_key(N, p))


async def test_rebuild_and_verify_with_partitions_at_different_places(live):
    async with live.db.transaction("test_layout") as conn:
        await set_checkpoints(conn, "read_model", START, N)
    await HistoryWriter(live.url, events=800, talks=24, seed=81).write()
    await start_partitions(live, list(range(N)))
    await live.partitions_projected(N, list(range(N)))
    await live.stop_projectors()
    # More history, projected by partitions 0 and 1 only: 2 and 3 stay behind.
    await HistoryWriter(live.url, events=500, talks=24, seed=82).write()
    await start_partitions(live, [0, 1])
    await live.partitions_projected(N, [0, 1])
    await live.stop_projectors()
    checkpoints = await live.checkpoints()
    places = [place for _, _, place in checkpoints]
    assert len(set(places)) == N and max(places[2:]) < min(places[:2]), checkpoints
    projected = await live.read_tables()

    for workers in (1, 2):
        report = await verify_read_model(live.db, progress=Quiet, chunk_size=250,
                                         workers=workers)
        assert report.identical, [str(d) for d in report.differences]
        assert report.checkpoints == places
    result = await rebuild_read_model(live.db, progress=Quiet, chunk_size=250, partitions=N,
                                      workers=2)
    assert not result.relaid and result.events < 1_300  # not what partitions 2 and 3 lack
    assert await live.checkpoints() == checkpoints
    assert await live.read_tables() == projected

    # All four projecting while writes go on: a rebuild and a verify meet them where they are.
    await start_partitions(live, list(range(N)))
    writing = asyncio.create_task(HistoryWriter(live.url, events=600, talks=12,
                                                seed=83).write())
    result = await rebuild_read_model(live.db, progress=Quiet, chunk_size=250, partitions=N)
    report = await verify_read_model(live.db, progress=Quiet, chunk_size=250, workers=2)
    assert report.identical, [str(d) for d in report.differences]
    await writing
    await live.partitions_projected(N, list(range(N)))
    await live.stop_projectors()
    assert [c[:2] for c in await live.checkpoints()] == [(p, N) for p in range(N)]
    report = await verify_read_model(live.db, progress=Quiet)
    assert report.identical, [str(d) for d in report.differences]
    assert report.events == 1_900
