"""The live projector's set-based batch (``projector.live_batch``, which
``read_model.apply_events`` uses for all but the smallest batches) leaves every column of
every read row as the per-event appliers do, whatever the batch boundaries: a history is
applied into scratch copies of the read tables, event by event and in batches of several
sizes, and the tables compared."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from uuid import uuid4

import psycopg
from aiohttp.test_utils import TestClient, TestServer
from psycopg.rows import dict_row

from events.envelope import StoredEvent
from events.postgres_store import row_to_event
from projector import live_batch, read_model
from projector.read_schema import TABLES, current_version, version_schema
from services.up import build_up_app
from tests.integration.projector.workload import one_talk_life
from tests.integration.publishing.caller import CHATS, Caller

Tables = dict[str, dict[Any, dict]]
Apply = Callable[[psycopg.AsyncConnection, Sequence[StoredEvent]], Awaitable[None]]


async def _history(conn: psycopg.AsyncConnection) -> list[StoredEvent]:
    # Every append has committed (the test client is closed): the whole table, in the
    # global order, without the store's barrier (which another test's open transaction
    # would hold back).
    cur = await conn.execute("SELECT position, tx_id::text::bigint AS tx_id, event_id,"
                             " stream_id, version, type, schema_version, data, metadata,"
                             " recorded_at FROM events ORDER BY events.tx_id, position")
    return [row_to_event(row) for row in await cur.fetchall()]


async def _applied(conn: psycopg.AsyncConnection, events: list[StoredEvent],
                   batch_size: int | None, apply: Apply = live_batch.apply_batch) -> Tables:
    """The read tables after ``events``, in batches of ``batch_size`` through ``apply``
    (None: one ``apply_event`` at a time), in scratch tables that a rollback removes."""
    live = version_schema(await current_version(conn))
    await conn.execute("CREATE SCHEMA test_batch_scratch")
    for table in TABLES:
        await conn.execute(f"CREATE TABLE test_batch_scratch.{table.name}"
                           f" (LIKE {live}.{table.name} INCLUDING ALL)")
    await conn.execute("SET LOCAL search_path TO test_batch_scratch, public")
    step = batch_size or 1
    for start in range(0, len(events), step):
        batch = events[start:start + step]
        async with conn.pipeline():  # as the projector runs a batch
            if batch_size is None:
                await read_model.apply_event(conn, batch[0])
            else:
                await apply(conn, batch)
    tables: Tables = {}
    for table in TABLES:
        cur = await conn.execute(f"SELECT * FROM test_batch_scratch.{table.name}")
        tables[table.name] = {row["id"]: row for row in await cur.fetchall()}
    return tables


async def test_batches_of_any_size_leave_the_rows_the_per_event_appliers_leave(
        fresh_database_url, settings):
    url = fresh_database_url
    local = settings.model_copy(update={"database_url": url})
    customer = uuid4()
    async with TestClient(TestServer(build_up_app(local))) as client:
        for _ in range(2):
            await one_talk_life(client, customer)
        # a talk that stays: posts, a thread, reads by its members, one who leaves
        agents = [uuid4() for _ in range(3)]
        alice, bob = Caller(client, customer, agents[0]), Caller(client, customer, agents[1])
        chat, _ = await alice.create_group(agents[1], agents[2], name="stays")
        first, _ = await alice.post(chat["id"], "one")
        for n in range(3):
            await bob.post(chat["id"], f"reply {n}", parent_id=first["id"])
        last, _ = await alice.post(chat["id"], "two")
        await bob.command("POST", f"{CHATS}/{chat['id']}/read", {"message_id": last["id"]})
        await alice.post(chat["id"], "three")

    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        events = await _history(conn)
        assert len(events) > 50
        try:
            expected = await _applied(conn, events, None)
        finally:
            await conn.rollback()
        assert all(expected.values())
        for batch_size, apply in [(n, live_batch.apply_batch)
                                  for n in (1, 2, 3, 7, 25, len(events))] + [
                (read_model.PER_EVENT_UP_TO, read_model.apply_events),
                (read_model.PER_EVENT_UP_TO + 1, read_model.apply_events)]:
            try:
                got = await _applied(conn, events, batch_size, apply)
            finally:
                await conn.rollback()
            for table, rows in expected.items():
                assert got[table] == rows, f"{table}, batches of {batch_size} ({apply.__name__})"
