"""Versioned SQL migrations: ``services/migrations/NNNN_name.sql``, applied in order.

Applied versions are recorded in ``schema_migrations``. A session-level advisory lock makes
concurrent runs (several services starting at once) take turns; the second finds nothing
left to do. Each file runs in its own transaction with its record.

The services do not migrate: :func:`schema_check` is a readiness check of each of them that
fails until every migration this code knows is applied, and ``talk migrate --check`` (with
``--wait``, what the Kubernetes initContainers run) asks the same question of
:func:`pending_migrations`. A schema *ahead* of the code (a newer release migrated first) is
fine: migrations are backward compatible (expand, deploy, contract).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources

import psycopg
import structlog
from psycopg.rows import tuple_row

from services.db import Database

log = structlog.get_logger("talk.migrate")

MIGRATION_LOCK = 0x74616C6B_6D6967  # "talkmig"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("services.migrations").iterdir():
        m = _NAME.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text("utf-8")))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


async def apply_migrations(database_url: str, up_to: int | None = None) -> list[int]:
    """Apply what is missing (up to version ``up_to`` if given); returns the versions applied
    by this call."""
    applied_now: list[int] = []
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur = await conn.execute("SELECT version FROM schema_migrations")
            done = {row[0] for row in await cur.fetchall()}
            for mig in available_migrations():
                if mig.version in done or (up_to is not None and mig.version > up_to):
                    continue
                async with conn.transaction():
                    await conn.execute(mig.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                        (mig.version, mig.name),
                    )
                log.info("migration.applied", version=mig.version, name=mig.name)
                applied_now.append(mig.version)
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
    if not applied_now:
        log.info("migration.up_to_date")
    return applied_now


class SchemaBehind(RuntimeError):
    """The database lacks migrations this code needs."""


async def pending_migrations(conn: psycopg.AsyncConnection) -> list[Migration]:
    """The migrations this code knows that ``conn``'s database has not applied (all of them
    on a fresh database)."""
    cur = conn.cursor(row_factory=tuple_row)
    await cur.execute("SELECT to_regclass('schema_migrations') IS NOT NULL")
    (exists,) = await cur.fetchone()
    done: set[int] = set()
    if exists:
        await cur.execute("SELECT version FROM schema_migrations")
        done = {row[0] for row in await cur.fetchall()}
    return [mig for mig in available_migrations() if mig.version not in done]


def describe_pending(pending: list[Migration], *, named: int = 3) -> str:
    """What to do first, then which (the first ``named`` of them: readiness answers are
    cut short)."""
    names = ", ".join(f"{mig.version:04d}_{mig.name}" for mig in pending[:named])
    more = f", and {len(pending) - named} more" if len(pending) > named else ""
    return f"run `talk migrate`: {len(pending)} migration(s) pending ({names}{more})"


def schema_check(db: Database) -> Callable[[], Awaitable[None]]:
    """A readiness check (named ``schema``): fails until the schema is at the version the
    code needs. Once it has passed it answers at once (a schema never goes back)."""
    up_to_date = False

    async def check() -> None:
        nonlocal up_to_date
        if up_to_date:
            return
        async with db.statement("schema_check") as conn:
            pending = await pending_migrations(conn)
        if pending:
            raise SchemaBehind(describe_pending(pending))
        up_to_date = True

    return check


async def check_migrations(database_url: str, connect_timeout: float) -> list[Migration]:
    """What ``talk migrate --check`` asks: the pending migrations, on a connection of its own."""
    async with await psycopg.AsyncConnection.connect(
            database_url, autocommit=True, connect_timeout=connect_timeout) as conn:
        return await pending_migrations(conn)


async def wait_for_schema(database_url: str, connect_timeout: float, wait: float,
                          interval: float = 2.0) -> list[Migration]:
    """:func:`check_migrations` again every ``interval`` seconds for up to ``wait`` seconds,
    until nothing is pending; Postgres being unreachable meanwhile counts as not yet. Returns
    what is still pending, or raises the last connection error if Postgres never answered."""
    deadline = time.monotonic() + wait
    while True:
        try:
            pending = await check_migrations(database_url, connect_timeout)
        except psycopg.OperationalError:
            if time.monotonic() + interval > deadline:
                raise
            log.info("migration.waiting", reason="postgres unavailable")
        else:
            if not pending or time.monotonic() + interval > deadline:
                return pending
            log.info("migration.waiting", pending=[mig.version for mig in pending])
        await asyncio.sleep(interval)
