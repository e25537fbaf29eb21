"""``talk projections rebuild`` while agents write and read through the API: the query API
answers every request, no row is lost or doubled, and the switched-in tables equal both a
verify scratch copy and the pure fold of the history."""

from __future__ import annotations

import asyncio

from aiohttp.test_utils import TestClient, TestServer

from bench.history import HistoryWriter
from projector.rebuild import rebuild_read_model
from projector.verify import verify_read_model
from services.up import build_up_app
from tests.history import assert_read_tables_match_history
from tests.integration.api.conftest import CHATS, MESSAGES, Agent, TalkClient
from tests.integration.rebuild.conftest import Quiet
from tests.support import wait_until


async def test_rebuild_during_live_writes_and_reads(live):
    # A history from before (an assortment of every event type), projected live.
    await HistoryWriter(live.url, events=3_000, talks=30, seed=61).write()
    await live.start_projector()
    await live.projected_to_head()

    settings = live.settings.model_copy(update={"read_your_writes_timeout": 30.0})
    client = TestClient(TestServer(build_up_app(settings)))
    await client.start_server()
    try:
        writers_api = TalkClient(client, live.db)  # GETs wait for the writer's own writes
        readers_api = TalkClient(client, live.db)  # never writes: reads what is projected
        stop = asyncio.Event()
        errors: list[str] = []
        posted: list[str] = []
        reads = {"n": 0}

        alice = writers_api.agent()
        bob = alice.colleague()
        watched = [await alice.create_talk(members=(bob,)), await bob.create_talk(members=(alice,))]
        for chat in watched:
            await alice.get_chat(chat)  # projected: the readers may start
        # The same agents reading, without read-your-writes: what they see may lag, but must
        # never go back (a row lost in the switch would).
        readers = [Agent(readers_api, a.customer_id, a.agent_id) for a in (alice, bob)]

        async def writer(agent, chat) -> None:
            i = 0
            while not stop.is_set():
                i += 1
                message = await agent.post(chat, f"message {i}")
                posted.append(message["id"])
                if i % 3 == 0:
                    await agent.react(message, "👍")
                if i % 5 == 0:
                    await agent.ok("PUT", f"{MESSAGES}/{message['id']}", json={"text": "edited"})
                if i % 7 == 0:
                    await agent.create_talk(members=(bob if agent is alice else alice,))
                # Read-your-writes across the switch: the message is there, as written.
                seen = await agent.get_message(message)
                if seen["id"] != message["id"]:
                    errors.append(f"read back {seen['id']} for {message['id']}")

        async def reader(agent, chat) -> None:
            most = 0
            while not stop.is_set():
                resp = await agent.request("GET", MESSAGES,
                                           params={"chat_id": chat["id"], "page_size": "100"})
                if resp.status != 200:
                    errors.append(f"GET messages: {resp.status} {await resp.text()}")
                    continue
                ids = [m["id"] for m in (await resp.json())["result"]]
                if len(ids) != len(set(ids)):
                    errors.append(f"a message listed twice: {ids}")
                if len(ids) < min(most, 100):
                    errors.append(f"the talk showed {most} messages, then {len(ids)}")
                most = max(most, len(ids))
                resp = await agent.request("GET", CHATS, params={"page_size": "100"})
                if resp.status != 200:
                    errors.append(f"GET talk_chats: {resp.status} {await resp.text()}")
                    continue
                chat_ids = [c["id"] for c in (await resp.json())["result"]]
                if len(chat_ids) != len(set(chat_ids)) or chat["id"] not in chat_ids:
                    errors.append(f"talk list wrong: {chat_ids}")
                reads["n"] += 1

        tasks = [asyncio.create_task(writer(alice, watched[0])),
                 asyncio.create_task(writer(bob, watched[1])),
                 *(asyncio.create_task(reader(agent, chat))
                   for agent, chat in zip(readers, watched, strict=True))]
        try:
            await wait_until(lambda: _at_least(len(posted), 6), timeout=30, what="writes")
            for expected_version in (2, 3):
                reads_before, posted_before = reads["n"], len(posted)
                result = await rebuild_read_model(live.db, progress=Quiet, chunk_size=400)
                assert result.version == expected_version
                assert result.old_schema_dropped
                assert result.events >= 3_000
                await wait_until(lambda r=reads_before, p=posted_before: _at_least(
                    min(reads["n"] - r, len(posted) - p), 3), timeout=30,
                    what="reads and writes after the switch")
            # Verify while the writers and the projector go on: it compares the live tables
            # and its scratch copy at one checkpoint, whatever the projector does meanwhile.
            posted_before = len(posted)
            report = await verify_read_model(live.db, progress=Quiet, chunk_size=400)
            assert report.identical, [str(d) for d in report.differences]
            await wait_until(lambda: _at_least(len(posted) - posted_before, 1), timeout=30,
                             what="writes during verify")
        finally:
            stop.set()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert [o for o in outcomes if o is not None] == []
        assert errors == []
    finally:
        await client.close()

    await live.projected_to_head()
    assert (await live.fetch("SELECT version FROM read_model_version"))[0]["version"] == 3
    schemas = await live.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'read%%'")
    assert [row["nspname"] for row in schemas] == ["read_v3"]
    rows = await live.fetch("SELECT id::text FROM rm_messages WHERE id = ANY(%s::uuid[])",
                            (posted,))
    assert sorted(row["id"] for row in rows) == sorted(posted)

    await live.stop_projectors()  # both comparisons below are then at the same point
    report = await verify_read_model(live.db, progress=Quiet)
    assert report.identical, [str(d) for d in report.differences]
    assert report.rows["rm_messages"] >= len(posted)
    await assert_read_tables_match_history(live.url)


async def _at_least(value: int, least: int) -> bool:
    return value >= least
