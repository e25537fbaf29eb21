"""Versioned SQL migrations: ``services/migrations/NNNN_name.sql``, applied in order.

Applied versions are recorded in ``schema_migrations``. A session-level advisory lock makes
concurrent runs (several services starting at once) take turns; the second finds nothing
left to do. Each file runs in its own transaction with its record.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

import psycopg
import structlog

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
