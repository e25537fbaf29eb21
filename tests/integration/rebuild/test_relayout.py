"""TALK_PROJECTOR_PARTITIONS changed: the rebuild refuses (exit 3) while a projector holds
a lock, and with the projectors stopped lays the checkpoints out anew in the new number of
partitions, where every event before is projected and none after (so the new projectors
leave nothing unprojected, nor unpublished: the pending outbox rows move to their talk's
new partition)."""

from __future__ import annotations

from uuid import uuid4

from bench.history import HistoryWriter
from events.envelope import Checkpoint
from projector.partition_share import partition_lock_key
from projector.partitioning import partition_of
from projector.running import projector_running
from projector.verify import verify_read_model
from tests.integration.rebuild.conftest import Quiet

N = 4


async def test_a_new_number_of_partitions_takes_the_projectors_stopped(live):
    await HistoryWriter(live.url, events=800, talks=12, seed=91).write()
    await live.start_projector()  # one partition: the layout in store is 1
    await live.projected_to_head()
    async with live.db.statement("test_running") as conn:
        assert await projector_running(conn)

    code, out = await live.talk_cli("projections", "rebuild", projector_partitions=str(N))
    assert code == 3, out
    assert "laid out in 1 partition(s) and TALK_PROJECTOR_PARTITIONS is 4" in out, out
    assert "stop them all" in out, out
    assert [c[:2] for c in await live.checkpoints()] == [(0, 1)]

    await live.stop_projectors()
    async with live.db.statement("test_running") as conn:
        assert not await projector_running(conn)
    projected, (_, _, old) = await live.read_tables(), (await live.checkpoints())[0]
    await HistoryWriter(live.url, events=400, talks=6, seed=92).write()  # not projected
    chat_id = uuid4()  # a pending outbox row of partition 0, whose talk is in another of 4
    while partition_of(chat_id, N) == 0:
        chat_id = uuid4()
    await live.fetch("INSERT INTO outbox (message_id, position, customer_id, chat_id,"
                     " routing_key, body) VALUES (%s, 1, %s, %s, 'k', '{}')",
                     (uuid4(), uuid4(), chat_id))

    code, out = await live.talk_cli("projections", "rebuild", "--workers", "2",
                                    projector_partitions=str(N))
    assert code == 0, out
    assert "laid out anew in 4 partitions" in out, out
    laid = await live.checkpoints()
    assert [c[:2] for c in laid] == [(p, N) for p in range(N)]
    first_new = (await live.fetch(
        "SELECT tx_id::text::bigint AS tx, position FROM events"
        " WHERE (tx_id, position) > (%s::text::xid8, %s) ORDER BY tx_id, position LIMIT 1",
        (str(old.tx_id), old.position)))[0]
    # Just before the first event not projected: the copy holds what was projected.
    assert {place for _, _, place in laid} == {
        Checkpoint(first_new["tx"], first_new["position"] - 1)}
    assert await live.read_tables() == projected
    assert (await live.fetch("SELECT partition FROM outbox"))[0]["partition"] == \
        partition_of(chat_id, N)

    for p in range(N):  # the new layout's projectors go on from there
        await live.start_projector(partition=p, partitions=N, lock_key=partition_lock_key(N, p))
    async with live.db.statement("test_running") as conn:
        assert await projector_running(conn)
    await live.partitions_projected(N, list(range(N)))
    await live.stop_projectors()
    report = await verify_read_model(live.db, progress=Quiet)
    assert report.identical, [str(d) for d in report.differences]
    assert report.events == 1_200
