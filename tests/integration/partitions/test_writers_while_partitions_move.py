"""Concurrent writers (whole talk lives through the command API, and appends straight to the
event store) while partitions move between ``talk projector`` processes: one starts alone,
two more join (it gives partitions up to them), it is killed (SIGKILL) while a transaction
with an early position in one of its partitions is still open (the others take its
partitions over), and one of those two is stopped (SIGTERM: the last one takes its).

No event is skipped and none applied twice, per partition: each partition's committed
batches chain from the start to its checkpoint and each applied exactly its partition's
events of its range, once (tests/integration/partitions/batches.py, at the grain of events);
the ledger of committed read-table writes equals the history applied once in those batches
(tests/integration/projector/ledger.py, which catches the silent double applies); the
partition that changed hands under the open transaction did not pass it; the read tables
equal a rebuild; and the stream holds every event once after dedupe, each talk's in order."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import psycopg
from aiohttp.test_utils import TestClient, TestServer

from events.notifier import CommitNotifier
from events.postgres_store import PostgresEventStore, append_on
from projector.partitioning import partition_of
from services.db import Database, make_pool
from services.up import build_up_app
from tests.factories import new_chat_append
from tests.history import assert_read_tables_match_history
from tests.integration.partitions import batches, progress
from tests.integration.partitions.fleet import Fleet, Member
from tests.integration.partitions.stream_check import assert_stream_holds_each_once_in_order
from tests.integration.partitions.writers import Lives, StoreAppends
from tests.integration.projector import ledger
from tests.support import wait_until

PARTITIONS = 6
STORE_WRITERS, API_WRITERS = 4, 2
READS = "talk_projector_reads_total"


async def test_no_event_skipped_or_applied_twice_while_partitions_move(
        fresh_database_url, settings, stream_names):
    url = fresh_database_url
    schema = await ledger.install(url)
    await batches.install(url)
    # The API publishes nothing, and knows how the projection is laid out (X-Talk-Min-Position).
    # A small pool: the processes take a few connections per partition on a shared server.
    local = settings.model_copy(update={"database_url": url, "projector_partitions": PARTITIONS,
                                         "db_pool_max_size": 4})
    fleet = Fleet(url, PARTITIONS, batch_size=20, talk=stream_names)
    customer = uuid4()
    pool = make_pool(local, min_size=1, max_size=4, name="talk-test-writers")
    await pool.open()
    notifier = CommitNotifier(url)
    await notifier.start()
    store = PostgresEventStore(Database(pool), notifier)
    stop = asyncio.Event()
    try:
        first, = await fleet.start(1)
        await fleet.wait_evenly_shared()
        async with TestClient(TestServer(build_up_app(local))) as client:
            appends = [StoreAppends(store, customer, url, PARTITIONS) for _ in range(STORE_WRITERS)]
            lives = [Lives(client, customer) for _ in range(API_WRITERS)]
            writing = [asyncio.create_task(w.run(stop)) for w in [*appends, *lives]]
            try:
                async def written() -> int:
                    return sum(a.appended for a in appends) + sum(life.done for life in lives)

                async def step() -> None:
                    """Each move happens with writes landing since the last one."""
                    mark = await written()
                    await wait_until(lambda: _more(written, mark), timeout=30,
                                     what="writes landing between moves")

                await step()
                await fleet.start(2)
                await fleet.wait_evenly_shared()
                await step()
                await _killed_while_a_transaction_is_open(fleet, first, url, store, customer)
                await step()
                second = fleet.live[0]
                await fleet.stop(second)
                await fleet.wait_evenly_shared()
                await step()
            finally:
                stop.set()
                await asyncio.gather(*writing)

        await wait_until(lambda: progress.all_caught_up(url, PARTITIONS), timeout=60,
                         what="every partition at its last event")
        wrong, per_partition = await batches.problems(url, PARTITIONS)
        assert not wrong, wrong
        reference, _ = await ledger.reference_writes(url, schema)
        live = await ledger.live_writes(url, schema)
        assert not (diff := ledger.differences(live, reference)), diff
        await assert_read_tables_match_history(url)
        stats = await assert_stream_holds_each_once_in_order(
            stream_names["amqp_url"], stream_names["stream_queue"], url, customer)
        print(f"{len(fleet.members)} processes, batches per partition {per_partition};"
              f" stream {stats}")
    finally:
        stop.set()
        await fleet.close()
        await notifier.stop()
        await pool.close()


async def _killed_while_a_transaction_is_open(fleet: Fleet, victim: Member, url: str,
                                              store: PostgresEventStore, customer: UUID) -> None:
    """A transaction appends a talk into a partition ``victim`` owns and stays open; another
    talk of that partition commits after it. ``victim`` is killed and the partitions settle
    among the others; the new owner reads its partition again and again, and passes neither
    talk while the transaction is open. Then it commits."""
    holders = await fleet.lock_holders()
    partition = next(p for p, by in sorted(holders.items()) if by == [victim])
    held_append, held_md = new_chat_append(_talk_in(partition), customer)
    later_append, later_md = new_chat_append(_talk_in(partition), customer)
    talks = [held_append.events[0].event.chat_id, later_append.events[0].event.chat_id]
    async with await psycopg.AsyncConnection.connect(url) as held:
        held_at = (await append_on(held, [held_append], held_md)).checkpoint
        later_at = (await store.append([later_append], later_md)).checkpoint
        await fleet.kill(victim)
        await fleet.wait_evenly_shared()
        owner = (await fleet.lock_holders())[partition][0]
        assert isinstance(owner, Member) and owner is not victim
        # The new owner has read the partition and found committed events held back behind
        # the open transaction (it measures the partition's lag then), and read again since.
        await wait_until(lambda: _lag_seen(owner, partition), timeout=15,
                         what=f"{owner} seeing partition {partition}'s events held back")
        reads = await _reads(owner)
        await wait_until(lambda: _more(lambda: _reads(owner), reads + 3), timeout=15,
                         what=f"{owner} reading the store again")
        cp = (await progress.checkpoints(url, PARTITIONS))[partition]
        assert cp < held_at, f"partition {partition} at {cp} passed the open transaction's {held_at}"
        assert await _projected(url, talks) == 0, "a talk behind the open transaction was projected"
        await held.commit()
    store.committed([held_append])
    await wait_until(lambda: progress.reached(url, PARTITIONS, partition, max(held_at, later_at)),
                     timeout=30,
                     what=f"partition {partition} past both talks")
    assert await _projected(url, talks) == 2


def _talk_in(partition: int) -> UUID:
    while partition_of(chat_id := uuid4(), PARTITIONS) != partition:
        pass
    return chat_id


async def _reads(member: Member) -> float:
    return sum(value for _, value in (await member.metrics()).get(READS, []))


async def _lag_seen(member: Member, partition: int) -> bool:
    return (await member.partition_lag()).get(partition, 0) >= 1


async def _more(count, than: float) -> bool:
    return await count() > than


async def _projected(url: str, talks: list[UUID]) -> int:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT count(*) FROM rm_chats WHERE id = ANY(%s)", (talks,))
        return (await cur.fetchone())[0]
