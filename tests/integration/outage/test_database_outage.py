"""The pool and ``Database`` against a Postgres that restarts and dies (a throw-away cluster):

- after ``pg_ctl restart -m fast`` no dead pooled connection is handed out: every statement
  succeeds, each old connection is found closed and replaced;
- while the server is down, a statement fails with ``DatabaseUnavailable`` (nothing sent, so
  the outcome is known), and the pool recovers by itself once the server is back;
- a connection lost at COMMIT (or during an autocommit statement) says the outcome is
  unknown; lost before it, a transaction is known not to be stored;
- the command API answers such a write 503 with ``Retry-After``, saying to retry with the
  Idempotency-Key, and the retry with that key stores it once;
- the gateway's membership check answers ``unavailable`` while the server is down only, and
  recovers by itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import uuid4

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

import command_api.http
import events.postgres_store
from services.db import DB_CONNECTIONS_DISCARDED, Database, DatabaseUnavailable, make_pool
from services.settings import Settings
from tests.integration.outage.cluster import ThrowawayCluster
from tests.support import TEST_SECRET, bearer, wait_until

POOL_SIZE = 4
CHATS = "/v1.0/service_agents/talk_chats"


@pytest.fixture()
def cluster(module_cluster: ThrowawayCluster) -> ThrowawayCluster:
    """One server for the module's tests (each leaves it running, or it is started again)."""
    return module_cluster


def _settings(cluster: ThrowawayCluster) -> Settings:
    return Settings(database_url=cluster.url("talk"), jwt_secret=TEST_SECRET,
                    db_connect_timeout=2.0, log_level="WARNING")


@pytest.fixture()
async def db(cluster: ThrowawayCluster) -> AsyncIterator[Database]:
    pool = make_pool(_settings(cluster), min_size=POOL_SIZE, max_size=POOL_SIZE,
                     name="talk-outage-test")
    await pool.open(wait=True, timeout=10)
    try:
        yield Database(pool)
    finally:
        await pool.close()


async def _backend_pids(db: Database) -> set[int]:
    """The server process of each pooled connection (all held at once, so all distinct)."""
    pids: set[int] = set()
    release = asyncio.Event()

    async def one() -> None:
        async with db.statement("test_backend_pid") as conn:
            cur = await conn.execute("SELECT pg_backend_pid() AS pid")
            pids.add((await cur.fetchone())["pid"])
            if len(pids) == POOL_SIZE:
                release.set()
            await release.wait()

    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(POOL_SIZE))), 10)
    return pids


async def test_no_dead_connection_is_handed_out_after_a_fast_restart(
        cluster: ThrowawayCluster, db: Database) -> None:
    before = await _backend_pids(db)
    discarded = DB_CONNECTIONS_DISCARDED._value.get()
    await asyncio.to_thread(cluster.restart_fast)  # returns once the server accepts again

    for _ in range(3 * POOL_SIZE):  # not one failure, though every pooled connection died
        await db.ping()
    assert DB_CONNECTIONS_DISCARDED._value.get() - discarded == POOL_SIZE
    assert not (await _backend_pids(db)) & before  # all new sessions


async def test_an_outage_is_unavailable_and_the_pool_recovers_by_itself(
        cluster: ThrowawayCluster, db: Database) -> None:
    await db.ping()
    await asyncio.to_thread(cluster.stop_immediate)
    with pytest.raises(DatabaseUnavailable) as caught:
        await db.ping()
    assert not caught.value.outcome_unknown  # no connection: nothing was sent
    assert isinstance(caught.value, psycopg.OperationalError)  # what callers already catch

    await asyncio.to_thread(cluster.start)

    async def answers() -> bool:
        try:
            await db.ping()
            return True
        except DatabaseUnavailable:
            return False

    await wait_until(answers, timeout=20, what="the pool to reconnect by itself")
    for _ in range(3 * POOL_SIZE):
        await db.ping()


async def test_a_connection_lost_at_commit_leaves_the_outcome_unknown(
        cluster: ThrowawayCluster, db: Database) -> None:
    async with db.statement("test_table") as conn:
        await conn.execute("CREATE TABLE kept (n int)")

    with pytest.raises(DatabaseUnavailable) as at_commit:
        async with db.transaction("test_insert") as conn:
            await conn.execute("INSERT INTO kept VALUES (1)")
            await asyncio.to_thread(cluster.stop_immediate)  # before COMMIT is sent
    assert at_commit.value.outcome_unknown
    await asyncio.to_thread(cluster.start)
    await wait_until(lambda: _answers(db), timeout=20, what="the pool to reconnect")

    with pytest.raises(DatabaseUnavailable) as before_commit:
        async with db.transaction("test_insert") as conn:
            await asyncio.to_thread(cluster.restart_fast)
            await conn.execute("INSERT INTO kept VALUES (2)")
    assert not before_commit.value.outcome_unknown  # the transaction never committed

    with pytest.raises(DatabaseUnavailable) as in_statement:
        async with db.statement("test_insert") as conn:
            await asyncio.to_thread(cluster.restart_fast)
            await conn.execute("INSERT INTO kept VALUES (3)")
    assert in_statement.value.outcome_unknown  # an autocommit statement may have committed

    async with db.statement("test_count") as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM kept")
        assert (await cur.fetchone())["n"] == 0


async def _answers(db: Database) -> bool:
    try:
        await db.ping()
        return True
    except DatabaseUnavailable:
        return False


@pytest.fixture()
async def command_api_client(cluster: ThrowawayCluster) -> AsyncIterator[TestClient]:
    from command_api.app import create_app

    client = TestClient(TestServer(create_app(_settings(cluster))))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


async def _chats_named(cluster: ThrowawayCluster, name: str) -> int:
    async with await psycopg.AsyncConnection.connect(cluster.url("talk")) as conn:
        cur = await conn.execute("SELECT count(*) FROM events WHERE type = 'ChatCreated'"
                                 " AND data->>'name' = %s", (name,))
        return (await cur.fetchone())[0]


async def test_a_write_cut_off_at_commit_answers_503_and_its_key_makes_the_retry_safe(
        cluster: ThrowawayCluster, command_api_client: TestClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    client = command_api_client
    headers = bearer(uuid4(), uuid4())
    real_record = command_api.http.record_response

    async def record_then_die(*args, **kwargs):  # the last statement before COMMIT
        await real_record(*args, **kwargs)
        await asyncio.to_thread(cluster.stop_immediate)

    monkeypatch.setattr(command_api.http, "record_response", record_then_die)
    body = {"type": "group", "name": "cut off at commit"}
    keyed = {**headers, "Idempotency-Key": f"outage-{uuid4()}"}
    resp = await client.post(CHATS, json=body, headers=keyed)
    assert resp.status == 503, await resp.text()
    assert resp.content_type == "application/problem+json"
    assert resp.headers["Retry-After"].isdigit()
    problem = await resp.json()
    assert problem["type"].endswith("/commit-outcome-unknown")
    assert "Idempotency-Key" in problem["detail"]

    monkeypatch.setattr(command_api.http, "record_response", real_record)
    await asyncio.to_thread(cluster.start)

    async def retried() -> bool:
        again = await client.post(CHATS, json=body, headers=keyed)
        assert again.status in (200, 503), await again.text()
        return again.status == 200

    await wait_until(retried, timeout=20, what="the retry with the same key to succeed")
    assert await _chats_named(cluster, body["name"]) == 1
    replay = await client.post(CHATS, json=body, headers=keyed)
    assert replay.status == 200 and replay.headers.get("Idempotent-Replayed") == "true"
    assert await _chats_named(cluster, body["name"]) == 1


async def test_a_write_without_a_key_cut_off_says_its_outcome_is_unknown(
        cluster: ThrowawayCluster, command_api_client: TestClient,
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_append_on = events.postgres_store.append_on

    async def die_then_append(conn, *args, **kwargs):  # the server dies under the statement
        await asyncio.to_thread(cluster.restart_fast)
        return await real_append_on(conn, *args, **kwargs)

    monkeypatch.setattr(events.postgres_store, "append_on", die_then_append)
    resp = await command_api_client.post(CHATS, json={"type": "group", "name": "no key"},
                                         headers=bearer(uuid4(), uuid4()))
    assert resp.status == 503, await resp.text()
    assert resp.content_type == "application/problem+json"
    assert resp.headers["Retry-After"].isdigit()
    problem = await resp.json()
    assert problem["type"].endswith("/commit-outcome-unknown")
    assert "may or may not be stored" in problem["detail"]


async def test_the_gateways_membership_check_is_unavailable_only_during_the_outage(
        cluster: ThrowawayCluster, db: Database) -> None:
    from query_api.consistency import ProjectionWatcher
    from query_api.membership import MembershipStore
    from services.gateway.membership import Membership

    membership = Membership(MembershipStore(db), ProjectionWatcher(cluster.url("talk")),
                            lag_wait=1.0)
    talk = uuid4()  # no such talk: the answer is not_found while the read tables answer

    async def verdict() -> str:
        return (await membership.check(uuid4(), uuid4(), [talk]))[talk]

    await _backend_pids(db)  # every pooled connection an open session
    await asyncio.to_thread(cluster.restart_fast)
    assert [await verdict() for _ in range(3 * POOL_SIZE)] == ["not_found"] * (3 * POOL_SIZE)

    await asyncio.to_thread(cluster.stop_immediate)
    assert await verdict() == "unavailable"
    await asyncio.to_thread(cluster.start)
    await wait_until(lambda: _is(verdict(), "not_found"), timeout=20,
                     what="the membership check to recover by itself")


async def _is(answer, expected: str) -> bool:
    return await answer == expected
