"""The query API reading a hot standby (``TALK_READ_DATABASE_URL``), as its own process: the
projector and the command API on the primary. ``X-Talk-Min-Position`` still reads your
writes (it waits for the standby to replay the projection's checkpoint); a standby whose
replay is paused answers 503 with ``Retry-After`` for a write it has not replayed, not stale
data and not 400 (the store's head is judged on the primary); once replay resumes, 200. The
gateway's membership check, on the standby, waits rather than refuse a talk the standby has
not replayed yet."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID, uuid4

import aiohttp
import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from command_api.app import create_app as create_command_api
from events.position_token import parse_position
from projector.runner import Projector
from query_api.consistency import ProjectionWatcher
from query_api.membership import MembershipStore
from services.db import Database, make_pool
from services.gateway.membership import ALLOWED, Membership
from services.settings import Settings
from tests.e2e.processes import TalkProcess, clean_env, free_port, talk_processes
from tests.integration.standby.replication import Replicated
from tests.support import TEST_SECRET, Running, bearer, wait_until

V = "/v1.0"
CHATS = f"{V}/service_agents/talk_chats"
MESSAGES = f"{V}/service_agents/talk_messages"
HEADER = "X-Talk-Min-Position"
READ_TIMEOUT = 2.0  # the query API's TALK_READ_YOUR_WRITES_TIMEOUT


@pytest.fixture()
def settings(replicated: Replicated) -> Settings:
    assert replicated.standby is not None
    return Settings(database_url=replicated.primary.url("talk"),
                    read_database_url=replicated.standby.url("talk"), jwt_secret=TEST_SECRET,
                    amqp_url=None, projector_poll_interval=0.2, log_level="WARNING")


@pytest.fixture()
async def command_api(settings: Settings) -> AsyncIterator[TestClient]:
    """The command API and the projector, in-process, on the primary."""
    projector = Running(Projector(settings), "standby-test-projector")
    client = TestClient(TestServer(create_command_api(settings)))
    await client.start_server()
    try:
        await asyncio.wait_for(projector.service.active.wait(), 15)
        yield client
    finally:
        await client.close()
        await projector.close()


@pytest.fixture()
async def standby_sql(replicated: Replicated) -> AsyncIterator[psycopg.AsyncConnection]:
    assert replicated.standby is not None
    async with await psycopg.AsyncConnection.connect(replicated.standby.url("talk"),
                                                     autocommit=True) as conn:
        yield conn
        await conn.execute("SELECT pg_wal_replay_resume()")  # whatever the test did


async def _paused(standby: psycopg.AsyncConnection) -> None:
    await standby.execute("SELECT pg_wal_replay_pause()")

    async def paused() -> bool:
        cur = await standby.execute("SELECT pg_get_wal_replay_pause_state() = 'paused'")
        return (await cur.fetchone())[0]

    await wait_until(paused, timeout=10, what="the standby's replay paused")


async def _projected_on_primary(settings: Settings, token: str) -> None:
    """Until the projector has applied ``token`` on the primary: from then on only the
    standby's replay stands between the write and the read."""
    target = parse_position(token)

    async def reached() -> bool:
        async with await psycopg.AsyncConnection.connect(settings.require_database_url()) as c:
            cur = await c.execute(
                "SELECT (last_tx, last_pos) >= (%s::text::xid8, %s) FROM projector_checkpoints"
                " WHERE name = 'read_model'", (str(target.tx_id), target.position))
            row = await cur.fetchone()
            return bool(row and row[0])

    await wait_until(reached, timeout=15, what=f"the primary's projection at {token}")


async def test_query_api_on_a_standby_reads_your_writes_and_503s_while_it_lags(
        tmp_path: Path, settings: Settings, command_api: TestClient,
        standby_sql: psycopg.AsyncConnection) -> None:
    port = free_port()
    env = clean_env(database_url=settings.require_database_url(),
                    read_database_url=settings.require_read_database_url(),
                    jwt_secret=TEST_SECRET, host="127.0.0.1", query_api_port=str(port),
                    read_your_writes_timeout=str(READ_TIMEOUT), log_level="WARNING")
    auth = bearer(uuid4(), uuid4())
    base = f"http://127.0.0.1:{port}"
    async with talk_processes() as running, aiohttp.ClientSession() as http:
        query_api = await TalkProcess.start("query-api", env=env, cwd=tmp_path)
        running.append(query_api)

        async def ready() -> bool:
            try:
                async with http.get(f"{base}/readyz") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await wait_until(ready, timeout=60, what=f"the query API's /readyz\n{query_api.output()}")

        # Read-your-writes: each command's answer, read at once from the standby.
        resp = await command_api.post(CHATS, json={"type": "group"}, headers=auth)
        assert resp.status == 200, await resp.text()
        chat, position = await resp.json(), resp.headers["X-Talk-Position"]
        async with http.get(f"{base}{CHATS}/{chat['id']}",
                            headers={**auth, HEADER: position}) as read:
            assert read.status == 200, await read.text()
            assert (await read.json())["id"] == chat["id"]
        for n in range(5):
            resp = await command_api.post(MESSAGES, json={"chat_id": chat["id"], "text": f"m{n}"},
                                          headers=auth)
            assert resp.status == 200, await resp.text()
            message, position = await resp.json(), resp.headers["X-Talk-Position"]
            async with http.get(f"{base}{MESSAGES}/{message['id']}",
                                headers={**auth, HEADER: position}) as read:
                assert read.status == 200, await read.text()
                assert (await read.json())["text"] == f"m{n}"

        # The standby stops replaying: a write projected on the primary is not on it.
        await _paused(standby_sql)
        resp = await command_api.post(MESSAGES, json={"chat_id": chat["id"], "text": "late"},
                                      headers=auth)
        assert resp.status == 200, await resp.text()
        late, position = await resp.json(), resp.headers["X-Talk-Position"]
        await _projected_on_primary(settings, position)
        late_path = f"{base}{MESSAGES}/{late['id']}"
        async with http.get(late_path, headers=auth) as stale:
            assert stale.status == 404  # without the header: the standby's (older) view
        async with http.get(late_path, headers={**auth, HEADER: position}) as lagging:
            body = await lagging.text()
            assert lagging.status == 503, body  # not stale data, and not 400 (beyond the head)
            assert lagging.headers["Retry-After"] == "1"
            assert lagging.content_type == "application/problem+json"
        async with http.get(f"{base}{MESSAGES}?chat_id={chat['id']}",
                            headers={**auth, HEADER: position}) as listing:
            assert listing.status == 503, await listing.text()

        # Replay resumes: the same read answers the write.
        await standby_sql.execute("SELECT pg_wal_replay_resume()")
        async with http.get(late_path, headers={**auth, HEADER: position}) as read:
            assert read.status == 200, await read.text()
            assert (await read.json())["text"] == "late"
        assert query_api.running, query_api.output()


async def test_gateway_membership_on_a_standby_waits_for_its_replay(
        settings: Settings, command_api: TestClient,
        standby_sql: psycopg.AsyncConnection) -> None:
    primary_pool = make_pool(settings, min_size=1, max_size=2, name="standby-test-primary")
    read_pool = make_pool(settings, min_size=1, max_size=2, name="standby-test-read",
                          url=settings.require_read_database_url())
    watcher = ProjectionWatcher(settings.require_database_url())
    await primary_pool.open()
    await read_pool.open()
    await watcher.start()
    try:
        store = MembershipStore(Database(read_pool), primary=Database(primary_pool))
        membership = Membership(store, watcher, lag_wait=0.5)
        customer, agent = uuid4(), uuid4()
        auth = bearer(customer, agent)

        await _paused(standby_sql)
        resp = await command_api.post(CHATS, json={"type": "group"}, headers=auth)
        assert resp.status == 200, await resp.text()
        chat_id = (await resp.json())["id"]
        await _projected_on_primary(settings, resp.headers["X-Talk-Position"])
        chat = UUID(chat_id)
        # The standby has not seen the talk: "try again", never "not found".
        assert await membership.check(customer, agent, [chat]) == {chat: "unavailable"}

        await standby_sql.execute("SELECT pg_wal_replay_resume()")
        membership.lag_wait = 10.0
        assert await membership.check(customer, agent, [chat]) == {chat: ALLOWED}
        # Another agent of the customer is refused, once the standby holds the primary's head.
        assert await membership.check(customer, uuid4(), [chat]) == {chat: "forbidden"}
    finally:
        await watcher.stop()
        await read_pool.close()
        await primary_pool.close()
