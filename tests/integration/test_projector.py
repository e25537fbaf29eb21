"""The projector: exactly one effect per event, under concurrent writers, open transactions,
crashes and failover."""

from __future__ import annotations

import asyncio

import psycopg

from events.envelope import START, Checkpoint
from events.postgres_store import append_on
from projector.runner import PROJECTOR_LOCK, Projector
from tests.factories import new_chat_append
from tests.history import assert_read_tables_match_history
from tests.integration.backends import backend_alive, lock_holder, terminate_backend
from tests.integration.store_places import live_checkpoint, stored_head
from tests.support import wait_until


async def count_chats(db, ids) -> int:
    async with db.statement("test_count") as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM rm_chats WHERE id = ANY(%s)", (list(ids),))
        return (await cur.fetchone())["n"]


async def test_concurrent_writers_each_event_applied_once(store, db, projector, settings):
    writers, per_writer = 16, 500
    created: list = []

    async def writer() -> None:
        for _ in range(per_writer):
            append, md = new_chat_append()
            await store.append([append], md)
            created.append(append.events[0].event.chat_id)

    await asyncio.gather(*(writer() for _ in range(writers)))
    assert len(created) == writers * per_writer
    head = await stored_head(store.db)
    await wait_until(lambda: _at_least(db, head), timeout=60, what="projector at the head")
    assert await count_chats(db, created) == writers * per_writer
    assert await live_checkpoint(db) == head
    await assert_read_tables_match_history(settings.database_url)


async def _at_least(db, head: Checkpoint) -> bool:
    return await live_checkpoint(db) >= head


async def test_an_early_position_committed_last_is_not_passed(store, db, projector):
    async with db.transaction("held_open") as conn:
        held, md = new_chat_append()
        held_result = await append_on(conn, [held], md)
        others = []
        for _ in range(5):
            append, md2 = new_chat_append()
            await store.append([append], md2)
            others.append(append.events[0].event.chat_id)
        # The others are committed, but they follow the open transaction in the global
        # order: the projector must wait for it. Let it read the store twice more.
        reads = projector.projector.reads
        await wait_until(lambda: _true(projector.projector.reads >= reads + 2),
                         what="two more reads by the projector")
        cp = await live_checkpoint(db)
        assert cp < held_result.checkpoint
        assert await count_chats(db, others) == 0
    head = await stored_head(store.db)
    await wait_until(lambda: _at_least(db, head), what="projector at the head")
    held_id = held.events[0].event.chat_id
    assert await count_chats(db, [held_id, *others]) == 6


async def test_stopped_mid_batch_then_restarted_matches_history(store, db, start_projector, settings):
    # A hook that fails inside the batch transaction: the batch must leave no trace.
    calls = 0

    async def crash_in_batch(conn, events):
        nonlocal calls
        calls += 1
        raise psycopg.OperationalError("simulated crash in the middle of a batch")

    ids = []
    for _ in range(50):
        append, md = new_chat_append()
        await store.append([append], md)
        ids.append(append.events[0].event.chat_id)
    crashing = start_projector(after_batch=crash_in_batch)
    await wait_until(lambda: _true(calls >= 2), what="the crashing projector to try")
    await crashing.close()
    assert await count_chats(db, ids) == 0, "a failed batch must leave no trace"

    # Kill a healthy projector's connection while it works, then let it recover.
    healthy = start_projector()
    await asyncio.wait_for(healthy.projector.active.wait(), 10)
    for _ in range(200):
        append, md = new_chat_append()
        await store.append([append], md)
        ids.append(append.events[0].event.chat_id)
    holder = await lock_holder(settings.database_url, PROJECTOR_LOCK)
    assert holder is not None, "the active projector holds its lock"
    assert await terminate_backend(settings.database_url, holder["pid"]), "the backend was killed"

    async def reconnected() -> bool:
        now = await lock_holder(settings.database_url, PROJECTOR_LOCK)
        return now is not None and now["pid"] != holder["pid"]

    await wait_until(reconnected, what="the projector on a new connection, the old one gone")
    assert not await backend_alive(settings.database_url, holder["pid"])
    head = await stored_head(store.db)
    await wait_until(lambda: _at_least(db, head), timeout=30, what="recovery to the head")
    assert await count_chats(db, ids) == len(ids)
    await assert_read_tables_match_history(settings.database_url)


async def _true(value: bool) -> bool:
    return value


async def test_only_one_instance_applies_and_the_standby_takes_over(store, db, start_projector):
    first = start_projector()
    await asyncio.wait_for(first.projector.active.wait(), 10)
    second = start_projector()
    # The second waits on the lock while the first is active.
    append, md = new_chat_append()
    await store.append([append], md)
    head = await stored_head(store.db)
    await wait_until(lambda: _at_least(db, head), what="first instance applying")
    assert first.projector.active.is_set() and not second.projector.active.is_set()

    await first.close()
    await asyncio.wait_for(second.projector.active.wait(), 10)
    append, md = new_chat_append()
    await store.append([append], md)
    head = await stored_head(store.db)
    await wait_until(lambda: _at_least(db, head), what="standby applying after takeover")
    assert await count_chats(db, [append.events[0].event.chat_id]) == 1


async def test_projector_class_is_configured_from_settings(settings):
    p = Projector(settings)
    assert p.url == settings.database_url


async def test_an_event_that_cannot_be_applied_is_reported_not_skipped(fresh_database_url, settings):
    """A stored event the projector cannot decode stops progress visibly (readiness fails,
    the task keeps retrying) and is never skipped."""
    from psycopg.types.json import Jsonb

    local = settings.model_copy(update={"database_url": fresh_database_url})
    async with await psycopg.AsyncConnection.connect(fresh_database_url, autocommit=True) as conn:
        md = Jsonb({"customer_id": "00000000-0000-0000-0000-000000000001",
                    "actor": {"type": "agent", "id": None}})
        await conn.execute(
            "SELECT * FROM talk_append_events(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (["chat-poison"], [0], [1], ["00000000-0000-0000-0000-0000000000aa"], ["chat-poison"],
             [1], ["NoSuchEvent"], [1], [Jsonb({})], md))
    stop = asyncio.Event()
    projector = Projector(local)
    task = asyncio.create_task(projector.run(stop))
    try:
        await wait_until(lambda: _true(projector.last_error is not None), what="the failure reported")
        assert "NoSuchEvent" in projector.last_error
        try:
            await projector.check_healthy()
            raise AssertionError("readiness must fail while the projector is stuck")
        except RuntimeError as exc:
            assert "projector failing" in str(exc)
        assert not task.done(), "the projector keeps retrying"
        assert projector.checkpoint == START, "the event was not skipped"
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
