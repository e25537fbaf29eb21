"""Helpers of the audit tests: running ``talk events ...`` (in-process or as a subprocess)
against a given database, an event store on a database of one's own, and seeding."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import structlog

from events.catalogue import ChatCreated, ChatUpdated, chat_stream
from events.envelope import Metadata, NewEvent
from events.postgres_store import PostgresEventStore
from events.store import StreamAppend
from services.db import Database, make_pool
from services.settings import Settings
from services.timefmt import utcnow
from tests.support import bearer, wait_until

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str


def talk_cli(database_url: str, *args: str) -> Ran:
    """``talk <args>`` as a separate process against ``database_url``."""
    env = {**os.environ, "TALK_DATABASE_URL": database_url, "TALK_LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-m", "services.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    return Ran(done.returncode, done.stdout, done.stderr)


def talk_events_here(database_url: str, capsys, *args: str) -> Ran:
    """``talk events <args>`` in this process (faster than a subprocess; sync tests only)."""
    from events import audit_cli
    from services.cli import build_parser

    parsed = build_parser().parse_args(["events", *args])
    run = getattr(audit_cli, f"run_{parsed.action}")
    capsys.readouterr()
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    try:
        code = run(settings_for(database_url), parsed)
    finally:
        structlog.configure(**saved)
    out = capsys.readouterr()
    return Ran(code, out.out, out.err)


def settings_for(database_url: str) -> Settings:
    return Settings(database_url=database_url, log_level="WARNING")


@asynccontextmanager
async def store_on(database_url: str, kind: type[PostgresEventStore] = PostgresEventStore,
                   ) -> AsyncIterator[PostgresEventStore]:
    pool = make_pool(settings_for(database_url), min_size=1, max_size=4, name="talk-audit-tests")
    await pool.open(wait=True)
    try:
        yield kind(Database(pool))
    finally:
        await pool.close()


def admin(database_url: str) -> psycopg.Connection:
    """A plain autocommit connection, for what the tests do behind the store's back."""
    return psycopg.connect(database_url, autocommit=True)


async def wait_settled(database_url: str, timeout: float = 60.0) -> None:
    """Wait until every committed event is below the xmin barrier (which is the oldest
    transaction of the whole server: other sessions' ones count too), so that a reader of
    the global order sees them all."""

    async def below_barrier() -> bool:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT coalesce(max(tx_id) < pg_snapshot_xmin(pg_current_snapshot()), true)"
                " FROM events")
            return (await cur.fetchone())[0]

    await wait_until(below_barrier, timeout, "the xmin barrier to pass the last event")


def settled(database_url: str, timeout: float = 60.0) -> None:
    """:func:`wait_settled`, for synchronous tests."""
    asyncio.run(wait_settled(database_url, timeout))


async def seed_talks(store: PostgresEventStore, talks: int, events_per_talk: int,
                     *, per_append: int = 10, customer_id: UUID | None = None) -> list[UUID]:
    """``talks`` chat streams of ``events_per_talk`` events each (a ChatCreated, then
    renames), appended ``per_append`` streams at a time, each stream's events at once."""
    customer_id = customer_id or uuid4()
    chat_ids = [uuid4() for _ in range(talks)]
    metadata = Metadata(customer_id, "agent", uuid4(), request_id=uuid4().hex)
    now = utcnow()
    for start in range(0, talks, per_append):
        appends = []
        for chat_id in chat_ids[start:start + per_append]:
            stream = chat_stream(chat_id)
            events = [NewEvent(stream, ChatCreated(chat_id=chat_id, customer_id=customer_id,
                                                   type="group", name="t", detail="",
                                                   tm_create=now))]
            events += [NewEvent(stream, ChatUpdated(chat_id=chat_id, name=f"name {n} ☃ \"q\"",
                                                    tm_update=now))
                       for n in range(2, events_per_talk + 1)]
            appends.append(StreamAppend(stream, 0, events))
        await store.append(appends, metadata)
    return chat_ids


def seed_talks_sync(database_url: str, talks: int, events_per_talk: int, **kwargs) -> list[UUID]:
    async def main() -> list[UUID]:
        async with store_on(database_url) as store:
            return await seed_talks(store, talks, events_per_talk, **kwargs)

    return asyncio.run(main())


# --- calling the API as an agent ---------------------------------------------------------------

V = "/v1.0"
CHATS = f"{V}/service_agents/talk_chats"
MESSAGES = f"{V}/service_agents/talk_messages"
AUDIT_CHATS = f"{V}/audit/talk_chats"
AUDIT_MESSAGES = f"{V}/audit/talk_messages"


class Agent:
    """An agent calling the API with its own token; ``session.position`` is the latest
    ``X-Talk-Position`` any command answered, sent as ``X-Talk-Min-Position`` on reads."""

    def __init__(self, session: Session, customer_id: UUID, roles: list[str] | None = None):
        self.session = session
        self.customer_id = customer_id
        self.agent_id = uuid4()
        self.id = str(self.agent_id)
        self.headers = bearer(customer_id, self.agent_id, roles=roles)

    async def command(self, method: str, path: str, json: Any = None) -> dict:
        resp = await self.session.client.request(method, path, json=json, headers=self.headers)
        body = await resp.json(content_type=None)
        assert resp.status == 200, (method, path, resp.status, body)
        self.session.position = max(self.session.position, int(resp.headers["X-Talk-Position"]))
        return body

    async def get(self, path: str, params: dict | None = None, *, status: int = 200) -> dict:
        headers = {**self.headers, "X-Talk-Min-Position": str(self.session.position)}

        async def answered():  # 503: the projection is not there yet (a loaded machine)
            resp = await self.session.client.get(path, params=params, headers=headers)
            return None if resp.status == 503 else resp

        resp = await wait_until(answered, timeout=30, what=f"GET {path} past a 503")
        body = await resp.json(content_type=None)
        assert resp.status == status, (path, resp.status, body)
        if status >= 400:
            assert resp.content_type == "application/problem+json"
            assert body["status"] == status
        return body


class Session:
    def __init__(self, client) -> None:
        self.client = client
        self.position = 0

    def agent(self, customer_id: UUID | None = None, roles: list[str] | None = None) -> Agent:
        return Agent(self, customer_id or uuid4(), roles)


def rehash_from(conn, stream: str, version: int) -> None:
    """Recompute the hashes of ``stream`` from ``version`` on, and its head: what someone with
    the database password and this repository could do."""
    last = conn.execute("SELECT max(version) FROM events WHERE stream_id = %s",
                        (stream,)).fetchone()[0]
    for v in range(version, last + 1):
        conn.execute(
            "UPDATE events e SET hash = talk_event_hash("
            "  coalesce((SELECT hash FROM events p WHERE p.stream_id = e.stream_id"
            "            AND p.version = e.version - 1), decode(repeat('00', 32), 'hex')),"
            "  e.event_id, e.stream_id, e.version, e.type, e.schema_version, e.recorded_at,"
            "  e.data, e.metadata)"
            " WHERE e.stream_id = %s AND e.version = %s", (stream, v))
    conn.execute("UPDATE streams SET head_hash = (SELECT hash FROM events WHERE stream_id = %s"
                 " AND version = %s) WHERE stream_id = %s", (stream, last, stream))
