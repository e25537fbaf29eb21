"""Projector processes killed (SIGKILL) in the middle of a batch that holds every event type,
then a standby taking over and a restarted process standing by: every event is applied
exactly once. The read tables equal a rebuild from the history (``projections verify``),
and the ledger of committed writes equals the history applied once, so a second apply of
any applier fails here, the silent ones (``member_count`` +/- 1, a reaction appended or
removed, a text or a deletion set again) included."""

from __future__ import annotations

import asyncio
from collections import Counter
from uuid import uuid4

import psycopg
from aiohttp.test_utils import TestClient, TestServer
from psycopg.rows import dict_row

from events.catalogue import EVENT_TYPES
from events.envelope import START
from events.postgres_store import read_all_on
from services.up import build_up_app
from tests.integration.projector import ledger
from tests.integration.projector.processes import (
    CommitGate,
    active_one,
    committed_checkpoint,
    head,
    install_commit_gate,
    kill_at_commit,
    start_projector,
)
from tests.integration.projector.workload import missing_event_types, one_talk_life
from tests.integration.verifying import verify_live_tables
from tests.support import wait_until

# The appliers whose second apply changes rows without any error: only the ledger sees it.
SILENT_IF_TWICE = {"ChatUpdated", "ChatDeleted", "ParticipantLeft", "MessageEdited",
                   "MessageDeleted", "ReactionAdded", "ReactionRemoved"}
LIVES = 16  # talks from creation to deletion (22 events each)
FIRST_HELD = 60  # the batch that reaches this many events is the first one killed
BATCH = 60  # events per projector batch: any 60 in a row hold one whole talk's life


async def history_types(url: str) -> Counter[str]:
    types: Counter[str] = Counter()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        cp = START
        while batch := await read_all_on(conn, cp, 10_000):
            types.update(s.type for s in batch)
            cp = batch[-1].checkpoint
    return types


async def test_the_workload_drives_every_event_type_and_a_double_apply_of_any_shows(
        fresh_database_url, settings):
    """The detector itself: one talk's life holds every catalogue type, and applying the
    events of any one type twice changes the ledger."""
    url = fresh_database_url
    schema = await ledger.install(url)
    local = settings.model_copy(update={"database_url": url})
    async with TestClient(TestServer(build_up_app(local))) as client:
        await one_talk_life(client, uuid4())
    once, types = await ledger.reference_writes(url, schema)
    missing = missing_event_types(types)
    assert not missing, (f"tests/integration/projector/workload.py drives no {sorted(missing)}:"
                         " add them to one_talk_life")
    loud, seen, no_op = set(), set(), set()
    for event_type in EVENT_TYPES:
        try:
            twice, _ = await ledger.reference_writes(url, schema, twice=event_type)
        except psycopg.errors.IntegrityError:
            loud.add(event_type)  # its second apply fails by itself (an INSERT)
            continue
        (seen if ledger.differences(twice, once) else no_op).add(event_type)
    # A second apply that writes nothing cannot change a row (a guarded applier, like the
    # read marker's, which only moves forward); any other shows in the ledger or fails.
    print(f"double apply: loud {sorted(loud)}, seen {sorted(seen)}, writes nothing {sorted(no_op)}")
    assert SILENT_IF_TWICE <= seen, sorted(SILENT_IF_TWICE - seen)


async def test_projector_processes_killed_mid_batch_apply_every_event_once(
        fresh_database_url, settings):
    url = fresh_database_url
    schema = await ledger.install(url)
    await install_commit_gate(url)
    local = settings.model_copy(update={"database_url": url})
    wanted = set(EVENT_TYPES)
    procs: list = []
    restarted: list[asyncio.Task] = []
    killed = []

    async def start() -> None:
        procs.append(await start_projector(url, BATCH))

    async def backlog() -> None:
        async with TestClient(TestServer(build_up_app(local))) as client:
            customer = uuid4()
            for _ in range(LIVES):
                await one_talk_life(client, customer)

    try:
        async with CommitGate(url) as gate:
            # Three processes start while the backlog is written; batches commit until one
            # reaches FIRST_HELD events: that one waits at the gate. After each kill the
            # next one commits a batch again, and its next batch is held.
            await gate.hold_at(FIRST_HELD)
            await asyncio.gather(backlog(), start(), start(), start())
            for n, gap in enumerate((BATCH + 10, BATCH + 10, None)):
                if n == 2:
                    await restarted[0]  # the standby left for the last kill
                active = await wait_until(lambda: active_one(url, procs), timeout=15,
                                          what="a projector taking over")
                killed.append(await kill_at_commit(url, active, gate, batch_size=BATCH,
                                                   schema=schema, next_gap=gap))
                procs.remove(active)
                if n == 0:  # the first one killed comes back, as a standby
                    restarted.append(asyncio.create_task(start()))
        await wait_until(lambda: _caught_up(url), timeout=60, what="the projection at the head")
        assert len(procs) == 1 and await active_one(url, procs) is procs[0], \
            "the restarted process finished the work"
    finally:
        for task in restarted:
            await asyncio.gather(task, return_exceptions=True)
        for proc in procs:
            await proc.kill()

    types = await history_types(url)
    assert not missing_event_types(types), missing_event_types(types)
    # Between two crashes the next projector committed batches (so the second and third
    # restarts resume from a checkpoint of a batch committed after a crash), and those two
    # crashes, with the backlog whole, each undid a whole batch of every type.
    assert killed[0][0] < killed[1][0] < killed[2][0]
    for _, batch in killed[1:]:
        assert not (wanted - {s.type for s in batch}), wanted - {s.type for s in batch}

    report = await verify_live_tables(local)
    assert report.events == sum(types.values())
    assert report.identical, [str(d) for d in report.differences]

    reference, applied = await ledger.reference_writes(url, schema)
    assert applied == types
    assert not (diff := ledger.differences(await ledger.live_writes(url, schema), reference)), diff


async def _caught_up(url: str) -> bool:
    return await committed_checkpoint(url) == await head(url)
