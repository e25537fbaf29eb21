"""``talk migrate``: versioned, recorded, safe to run concurrently, a no-op when current."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import psycopg

from services.migrate import apply_migrations, available_migrations
from tests.conftest import new_database
from tests.infra import drop_database


def _schema_state(url: str) -> tuple[list[int], int]:
    with psycopg.connect(url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = 'events'"
        ).fetchone()[0]
    return versions, tables


def test_talk_migrate_twice_at_once(postgres_admin_url):
    name, url = new_database(postgres_admin_url, "talk_mig")
    try:
        env = {"TALK_DATABASE_URL": url, "PATH": "/usr/bin:/bin"}
        procs = [subprocess.Popen([sys.executable, "-m", "services.cli", "migrate"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                 for _ in range(2)]
        outputs = [p.communicate(timeout=60)[0].decode() for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outputs
        versions, tables = _schema_state(url)
        assert versions == [m.version for m in available_migrations()]
        assert tables == 1
        # One of the two applied everything, the other found it up to date.
        assert sum("migration.applied" in out for out in outputs) == 1, outputs
        assert asyncio.run(apply_migrations(url)) == []
    finally:
        drop_database(postgres_admin_url, name)
