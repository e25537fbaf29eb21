"""The switch and its edges: a reader that holds one view while it asks for another (the
switch gives way, the reader gets no error), a rebuild that stops half-way (the next one
resumes it), one rebuild at a time, and the shape of the tables a rebuild creates."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from psycopg.rows import dict_row

from bench.history import HistoryWriter
from projector import replay as replay_module
from projector.rebuild import REPLAY_LOCK, ReplayBusy, rebuild_read_model
from projector.verify import verify_read_model
from tests.factories import new_chat_append
from tests.history import assert_read_tables_match_history
from tests.integration.rebuild.conftest import Quiet
from tests.support import wait_until


async def test_a_reader_holding_one_view_is_never_the_deadlock_victim(live):
    await HistoryWriter(live.url, events=400, talks=8, seed=62).write()
    await live.start_projector()
    await live.projected_to_head()

    async with await psycopg.AsyncConnection.connect(live.url, row_factory=dict_row) as reader:
        # A reader's transaction holds rm_participants...
        cur = await reader.execute("SELECT count(*) AS n FROM rm_participants")
        participants = (await cur.fetchone())["n"]
        rebuild = asyncio.create_task(rebuild_read_model(live.db, progress=Quiet))
        # ...while the switch has rm_chats and waits for rm_participants...
        await wait_until(lambda: _switch_waits_for_a_view(live), timeout=60,
                         what="the switch waiting for the views")
        # ...and then asks for rm_chats: a deadlock, which the switch must lose.
        cur = await reader.execute("SELECT count(*) AS n FROM rm_chats")
        assert (await cur.fetchone())["n"] == 8
        await reader.commit()
    result = await asyncio.wait_for(rebuild, 60)
    assert result.version == 2
    assert participants > 0
    assert (await live.fetch("SELECT version FROM read_model_version"))[0]["version"] == 2


async def _switch_waits_for_a_view(live) -> bool:
    rows = await live.fetch(
        "SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
        " WHERE NOT l.granted AND l.mode = 'AccessExclusiveLock'"
        "   AND c.relname = 'rm_participants' AND c.relkind = 'v'")
    return bool(rows)


async def test_a_projector_batch_in_flight_at_the_switch_lands_in_the_new_copy(live):
    await HistoryWriter(live.url, events=500, talks=10, seed=65).write()
    holding, entered, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def hold(conn, events) -> None:  # in the batch, after its read-table writes
        if holding.is_set():
            entered.set()
            await release.wait()

    await live.start_projector(after_batch=hold)
    await live.projected_to_head()
    holding.set()
    append, md = new_chat_append()
    await live.store.append([append], md)
    await asyncio.wait_for(entered.wait(), 30)  # a batch wrote the old tables...
    rebuild = asyncio.create_task(rebuild_read_model(live.db, progress=Quiet))
    await wait_until(lambda: _switch_waits_for_the_checkpoint(live), timeout=60,
                     what="the switch waiting for the batch")  # ...the switch waits for it,
    # then takes its events into the new copy.
    holding.clear()
    release.set()
    result = await asyncio.wait_for(rebuild, 60)
    assert result.version == 2
    await live.projected_to_head()
    chat_id = append.events[0].event.chat_id
    assert await live.fetch("SELECT id FROM rm_chats WHERE id = %s", (chat_id,)) == [
        {"id": chat_id}]
    await live.stop_projectors()
    report = await verify_read_model(live.db, progress=Quiet)
    assert report.identical, [str(d) for d in report.differences]
    await assert_read_tables_match_history(live.url)


async def _switch_waits_for_the_checkpoint(live) -> bool:
    rows = await live.fetch(
        "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        "   AND query LIKE '%%projector_checkpoints%%FOR UPDATE%%'")
    return bool(rows)


async def test_a_rebuild_that_stopped_half_way_is_resumed(live, monkeypatch):
    await HistoryWriter(live.url, events=2_000, talks=20, seed=63).write()
    await live.start_projector()
    await live.projected_to_head()

    original = replay_module.Replay._write_chunk
    written = 0

    async def crash_after_three_chunks(self, *args):
        nonlocal written
        if written == 3:
            raise psycopg.OperationalError("simulated crash of the rebuild")
        written += 1
        await original(self, *args)

    monkeypatch.setattr(replay_module.Replay, "_write_chunk", crash_after_three_chunks)
    with pytest.raises(psycopg.OperationalError):
        await rebuild_read_model(live.db, progress=Quiet, chunk_size=300)
    monkeypatch.setattr(replay_module.Replay, "_write_chunk", original)

    # The live copy is untouched; the half-built one kept its rows and its checkpoint.
    assert (await live.fetch("SELECT version FROM read_model_version"))[0]["version"] == 1
    kept = await live.fetch("SELECT last_pos FROM projector_checkpoints WHERE name = 'rebuild_v2'")
    assert kept and kept[0]["last_pos"] > 0

    result = await rebuild_read_model(live.db, progress=Quiet, chunk_size=300)
    assert result.version == 2
    assert result.events == 2_000 - 3 * 300  # only what the first run had not applied
    names = await live.fetch("SELECT name FROM projector_checkpoints ORDER BY name")
    assert [row["name"] for row in names] == ["read_model"]
    await live.stop_projectors()
    report = await verify_read_model(live.db, progress=Quiet)
    assert report.identical, [str(d) for d in report.differences]


async def test_one_rebuild_or_verify_at_a_time(live):
    async with await psycopg.AsyncConnection.connect(live.url, autocommit=True) as other:
        await other.execute("SELECT pg_advisory_lock(%s)", (REPLAY_LOCK,))
        with pytest.raises(ReplayBusy):
            await rebuild_read_model(live.db, progress=Quiet)
        with pytest.raises(ReplayBusy):
            await verify_read_model(live.db, progress=Quiet)
        code, out = await live.talk_cli("projections", "rebuild")
        assert code == 3 and "another" in out  # 3: unavailable (the lock is held)
    assert (await live.fetch("SELECT version FROM read_model_version"))[0]["version"] == 1


async def test_the_rebuilt_tables_have_the_migrated_shape(live):
    before = await _shape(live, "read_v1")
    result = await rebuild_read_model(live.db, progress=Quiet)
    assert result.schema == "read_v2"
    assert await _shape(live, "read_v2") == before
    views = await live.fetch(
        "SELECT DISTINCT v.relname, t.relnamespace::regnamespace::text AS schema"
        "  FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid"
        "  JOIN pg_class v ON v.oid = r.ev_class JOIN pg_class t ON t.oid = d.refobjid"
        " WHERE v.relkind = 'v' AND v.relname LIKE 'rm\\_%%' AND t.relkind = 'r'"
        " ORDER BY 1")
    assert [(r["relname"], r["schema"]) for r in views] == [
        ("rm_chats", "read_v2"), ("rm_messages", "read_v2"), ("rm_participants", "read_v2")]


async def _shape(live, schema: str) -> dict:
    columns = await live.fetch(
        "SELECT c.relname, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS type,"
        "       a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS default"
        "  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid"
        "  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
        " WHERE c.relnamespace = %s::regnamespace AND c.relkind = 'r' AND a.attnum > 0"
        " ORDER BY 1, 2", (schema,))
    indexes = await live.fetch(
        "SELECT indexname, replace(indexdef, %s, 'S.') AS def FROM pg_indexes"
        " WHERE schemaname = %s ORDER BY 1", (f"{schema}.", schema))
    constraints = await live.fetch(
        "SELECT conname, contype, pg_get_constraintdef(oid) AS def FROM pg_constraint"
        " WHERE connamespace = %s::regnamespace ORDER BY 1", (schema,))
    return {"columns": columns, "indexes": indexes, "constraints": constraints}
