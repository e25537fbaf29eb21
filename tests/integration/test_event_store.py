"""The Postgres event store: append, conflicts, immutability, the global order."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import psycopg
import pytest

from events.catalogue import ChatCreated, MessagePosted, chat_stream, message_stream
from events.envelope import START, NewEvent
from events.errors import ConcurrencyConflict
from events.store import StreamAppend
from services.timefmt import utcnow
from tests.factories import chat_created, new_chat_append, rename
from tests.support import wait_until


async def test_append_and_read_stream(store):
    append, md = new_chat_append()
    result = await store.append([append], md)
    assert len(result.positions) == 1 and result.tx_id > 0
    stored = await store.read_stream(append.stream_id)
    assert [s.version for s in stored] == [1]
    assert stored[0].event_id == append.events[0].event_id
    assert stored[0].metadata["request_id"] == md.request_id
    assert stored[0].metadata["actor"]["id"] == str(md.actor_id)
    decoded = stored[0].decode()
    assert isinstance(decoded, ChatCreated) and decoded == append.events[0].event


async def test_several_streams_in_one_transaction(store):
    a, md = new_chat_append()
    b, _ = new_chat_append(customer_id=md.customer_id)
    result = await store.append([a, b], md)
    assert len(result.positions) == 2
    assert len(await store.read_stream(a.stream_id)) == 1
    assert len(await store.read_stream(b.stream_id)) == 1


async def test_conflict_names_the_stream_and_writes_nothing(store):
    append, md = new_chat_append()
    await store.append([append], md)
    other, _ = new_chat_append()
    with pytest.raises(ConcurrencyConflict) as info:
        # ``other`` would succeed alone; the stale expectation on ``append`` fails it all.
        await store.append([other, StreamAppend(append.stream_id, 0, append.events[:0] or (
            NewEvent(append.stream_id, chat_created()),))], md)
    assert info.value.stream_id == append.stream_id
    assert await store.read_stream(other.stream_id) == []
    assert len(await store.read_stream(append.stream_id)) == 1


async def test_two_appends_with_the_same_expected_version_one_wins(store):
    append, md = new_chat_append()
    await store.append([append], md)
    chat_id = append.events[0].event.chat_id

    results = await asyncio.gather(
        store.append([rename(chat_id, 1, "first")], md),
        store.append([rename(chat_id, 1, "second")], md),
        return_exceptions=True,
    )
    wins = [r for r in results if not isinstance(r, BaseException)]
    losses = [r for r in results if isinstance(r, ConcurrencyConflict)]
    assert len(wins) == 1 and len(losses) == 1
    assert losses[0].stream_id == chat_stream(chat_id)
    stored = await store.read_stream(chat_stream(chat_id))
    assert [s.version for s in stored] == [1, 2]


async def waits_on_lock_held_by(db, holder: psycopg.AsyncConnection, task: asyncio.Task) -> None:
    """Wait until another backend waits on a lock that ``holder``'s transaction holds (as
    Postgres itself reports it: ``pg_blocking_pids``), and check ``task`` has not finished."""
    holder_pid = holder.info.backend_pid

    async def blocked() -> bool:
        assert not task.done(), f"it did not wait for the lock: {task.result()!r}"
        async with db.statement("test_blocked_by") as conn:
            cur = await conn.execute(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND %s = ANY(pg_blocking_pids(pid))", (holder_pid,))
            return (await cur.fetchone())["n"] > 0

    await wait_until(blocked, what="a backend waiting on a lock the open transaction holds")
    assert not task.done()


async def test_a_version_check_holds_the_stream_until_commit(store, db):
    """A check (an append with no events) fails when the stream moved, and a writer that
    moves the stream waits for a transaction holding the check."""
    append, md = new_chat_append()
    await store.append([append], md)
    chat_id = append.events[0].event.chat_id
    await store.append([rename(chat_id, 1, "renamed")], md)
    with pytest.raises(ConcurrencyConflict):
        await store.append([StreamAppend(chat_stream(chat_id), 1, ()),
                            StreamAppend(message_stream(uuid4()), 0, ())], md)

    from events.postgres_store import append_on

    async with db.transaction("hold_check") as conn:
        await append_on(conn, [StreamAppend(chat_stream(chat_id), 2, ())], md)
        writer = asyncio.create_task(store.append([rename(chat_id, 2, "late")], md))
        await waits_on_lock_held_by(db, conn, writer)
    await asyncio.wait_for(writer, 5)
    assert len(await store.read_stream(chat_stream(chat_id))) == 3


@pytest.mark.parametrize("statement", [
    "UPDATE events SET data = '{}'::jsonb WHERE position = %s",
    "DELETE FROM events WHERE position = %s",
])
async def test_stored_events_cannot_be_updated_or_deleted(store, settings, statement):
    append, md = new_chat_append()
    result = await store.append([append], md)
    # The test connects as a superuser: the trigger stops even that.
    async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
        with pytest.raises(psycopg.Error, match="immutable"):
            await conn.execute(statement, (result.positions[0],))
        with pytest.raises(psycopg.Error, match="immutable"):
            await conn.execute("TRUNCATE events")
    assert len(await store.read_stream(append.stream_id)) == 1


async def test_read_all_follows_commit_order_and_stops_at_open_transactions(store, db):
    from events.postgres_store import append_on

    first, md = new_chat_append()
    first_result = await store.append([first], md)

    async def first_readable():
        events = await store.read_all(START, 100_000)
        return events[-1].checkpoint if events and events[-1].position >= first_result.positions[0] else None

    head = await wait_until(first_readable, what="the first event readable")

    async with db.transaction("early_position_late_commit") as conn:
        held, md2 = new_chat_append()
        held_result = await append_on(conn, [held], md2)
        later, md3 = new_chat_append()
        later_result = await store.append([later], md3)
        assert later_result.positions[0] > held_result.positions[0] - 1
        visible = await store.read_all(head, 100)
        assert [e.stream_id for e in visible] == [], "nothing may pass the open transaction"
    # Once it commits, both are readable in commit order (await it: an unrelated open
    # transaction elsewhere on the server may hold the barrier back for a moment).
    after = await wait_until(lambda: _read_two(store, head), what="both events readable")
    assert [e.stream_id for e in after] == [held.stream_id, later.stream_id]


async def _read_two(store, head):
    events = await store.read_all(head, 100)
    return events if len(events) >= 2 else None


def _posted(chat_id) -> StreamAppend:
    """A new message stream with its MessagePosted (one event: the store's one-statement shape)."""
    message_id = uuid4()
    event = MessagePosted(message_id=message_id, chat_id=chat_id, owner_type="agent",
                          owner_id=uuid4(), type="normal", text="hi", tm_create=utcnow())
    stream = message_stream(message_id)
    return StreamAppend(stream, 0, (NewEvent(stream, event),))


async def test_one_event_with_checks_is_refused_whole_and_names_the_stream(store):
    """The one-statement shape: a check that fails, or the stream's own version, refuses the
    append with the stream that failed, and nothing is written."""
    append, md = new_chat_append()
    await store.append([append], md)
    chat_id = append.events[0].event.chat_id
    await store.append([rename(chat_id, 1, "renamed")], md)

    stale, post = StreamAppend(chat_stream(chat_id), 1, ()), _posted(chat_id)
    with pytest.raises(ConcurrencyConflict) as refused:
        await store.append([stale, post], md)
    assert refused.value.stream_id == chat_stream(chat_id)
    assert await store.read_stream(post.stream_id) == []

    other, _ = new_chat_append()
    await store.append([other], md)
    current = StreamAppend(chat_stream(chat_id), 2, ())
    result = await store.append([current, StreamAppend(other.stream_id, 1, ()), post], md)
    assert len(result.positions) == 1
    assert [s.version for s in await store.read_stream(post.stream_id)] == [1]

    with pytest.raises(ConcurrencyConflict) as refused:  # the stream itself is not new
        await store.append([current, post], md)
    assert refused.value.stream_id == post.stream_id
    with pytest.raises(ConcurrencyConflict) as refused:  # nor at version 2
        await store.append([current, rename(other.events[0].event.chat_id, 2, "x")], md)
    assert refused.value.stream_id == other.stream_id
    assert len(await store.read_stream(other.stream_id)) == 1


async def test_one_event_with_a_check_holds_the_checked_stream_until_commit(store, db):
    from events.postgres_store import append_on

    append, md = new_chat_append()
    await store.append([append], md)
    chat_id = append.events[0].event.chat_id
    async with db.transaction("post_holds_check") as conn:
        await append_on(conn, [StreamAppend(chat_stream(chat_id), 1, ()), _posted(chat_id)], md)
        writer = asyncio.create_task(store.append([rename(chat_id, 1, "late")], md))
        await waits_on_lock_held_by(db, conn, writer)
    await asyncio.wait_for(writer, 5)
    assert len(await store.read_stream(chat_stream(chat_id))) == 2


async def test_two_creations_of_one_stream_one_wins_and_the_other_is_a_conflict(store, db):
    """A second creation of a stream (the one-event statement) waits for the first, then is
    refused as a conflict naming the stream, and wrote nothing."""
    from events.postgres_store import append_on

    first, md = new_chat_append()
    second = StreamAppend(first.stream_id, 0, [NewEvent(first.stream_id, first.events[0].event)])
    async with db.transaction("first_creation") as conn:
        await append_on(conn, [first], md)
        creator = asyncio.create_task(store.append([second], md))
        await waits_on_lock_held_by(db, conn, creator)
    with pytest.raises(ConcurrencyConflict) as refused:
        await asyncio.wait_for(creator, 5)
    assert (refused.value.stream_id, refused.value.expected_version) == (first.stream_id, 0)
    stored = await store.read_stream(first.stream_id)
    assert [s.event_id for s in stored] == [first.events[0].event_id]
