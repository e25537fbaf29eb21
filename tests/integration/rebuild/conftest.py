"""A database of its own per rebuild test, with its projector, its API and helpers."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg.rows import dict_row

from events.envelope import Checkpoint
from events.postgres_store import PostgresEventStore
from projector.runner import Projector
from services.db import Database, make_pool
from services.settings import Settings
from tests.integration.store_places import live_checkpoint, stored_head
from tests.support import TEST_SECRET, wait_until


class Quiet:
    """A progress sink for in-process runs (the figures, no output)."""

    def __init__(self, label: str, total: int) -> None:
        self.total, self.done = total, 0

    def __call__(self, n: int) -> None:
        self.done += n

    def finish(self) -> None:
        pass


class Live:
    """The parts running against one fresh database."""

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.url = settings.database_url
        self.db = db
        self.store = PostgresEventStore(db)
        self._projectors: list[tuple[asyncio.Event, asyncio.Task]] = []

    async def start_projector(self, **hooks) -> Projector:
        projector = Projector(self.settings, **hooks)
        stop = asyncio.Event()
        self._projectors.append((stop, asyncio.create_task(projector.run(stop))))
        await asyncio.wait_for(projector.active.wait(), 15)
        return projector

    async def stop_projectors(self) -> None:
        for stop, task in self._projectors:
            stop.set()
            await asyncio.wait_for(task, 15)
        self._projectors.clear()

    async def head(self) -> Checkpoint:
        return await stored_head(self.db)

    async def live_checkpoint(self) -> Checkpoint:
        return await live_checkpoint(self.db)

    async def checkpoints(self) -> list[tuple[int, int, Checkpoint]]:
        """The live checkpoint rows: (partition, partitions, place)."""
        rows = await self.fetch(
            "SELECT partition, partitions, last_tx::text::bigint AS tx, last_pos"
            " FROM projector_checkpoints WHERE name = 'read_model' ORDER BY partition")
        return [(r["partition"], r["partitions"], Checkpoint(r["tx"], r["last_pos"]))
                for r in rows]

    async def partitions_projected(self, partitions: int, which: list[int],
                                   timeout: float = 60.0) -> None:
        """Wait until each partition in ``which`` has applied its last stored event."""
        async def reached() -> bool:
            rows = await self.fetch(
                "SELECT c.partition FROM projector_checkpoints c"
                " WHERE c.name = 'read_model' AND c.partition = ANY(%s) AND EXISTS"
                " (SELECT 1 FROM events e WHERE talk_partition(e.data->>'chat_id', %s)"
                "   = c.partition AND (e.tx_id, e.position) > (c.last_tx, c.last_pos))",
                (which, partitions))
            return not rows

        await wait_until(reached, timeout=timeout, what=f"partitions {which} projected")

    async def read_tables(self) -> dict[str, list]:
        """Every row of the read tables, in id order."""
        return {table: [r["row"] for r in await self.fetch(
                    f"SELECT to_jsonb(t) AS row FROM {table} t ORDER BY id")]
                for table in ("rm_chats", "rm_participants", "rm_messages")}

    async def projected_to_head(self, timeout: float = 60.0) -> None:
        head = await self.head()

        async def reached() -> bool:
            return await self.live_checkpoint() >= head

        await wait_until(reached, timeout=timeout, what=f"the projector at {head}")

    async def fetch(self, sql: str, params: tuple = ()) -> list[dict]:
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True,
                                                         row_factory=dict_row) as conn:
            cur = await conn.execute(sql, params)
            return await cur.fetchall() if cur.description else []

    async def talk_cli(self, *args: str, **settings: str) -> tuple[int, str]:
        """Run ``talk ARGS`` against this database (``settings``: more ``TALK_*``, without the
        prefix); its exit code and its output."""
        env = {**os.environ, "TALK_DATABASE_URL": self.url, "TALK_LOG_LEVEL": "WARNING",
               **{f"TALK_{k.upper()}": v for k, v in settings.items()}}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await asyncio.wait_for(proc.communicate(), 120)
        return proc.returncode, out.decode()


@pytest.fixture()
async def live(fresh_database_url: str) -> AsyncIterator[Live]:
    settings = Settings(database_url=fresh_database_url, jwt_secret=TEST_SECRET, amqp_url=None,
                        projector_poll_interval=0.2, log_level="WARNING")
    pool = make_pool(settings, min_size=1, max_size=12, name="talk-rebuild-tests")
    await pool.open()
    running = Live(settings, Database(pool))
    try:
        yield running
    finally:
        await running.stop_projectors()
        await pool.close()
