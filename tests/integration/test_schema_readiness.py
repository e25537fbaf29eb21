"""A service is not ready before the schema is: on a fresh (unmigrated) database, or one a
migration behind, every service's ``/readyz`` answers 503 problem+json naming the ``schema``
check, and ``talk migrate --check`` exits 1; once ``talk migrate`` has run, both pass. This is
what the Kubernetes initContainers and readiness probes rely on (deploy/k8s/base)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from types import SimpleNamespace

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from command_api.app import create_app as command_api_app
from projector.service import health_app
from query_api.app import create_app as query_api_app
from services.cli_support import EXIT_FINDINGS, EXIT_OK
from services.db import Database, make_pool
from services.migrate import apply_migrations, available_migrations
from services.settings import Settings
from tests.conftest import new_database
from tests.infra import drop_database
from tests.support import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]


def _migrate_check(url: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "TALK_DATABASE_URL": url, "TALK_LOG_LEVEL": "WARNING"}
    return subprocess.run([sys.executable, "-m", "services.cli", "migrate", "--check"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


async def _ready_projection() -> None:
    """The projector's own check, passing: only the schema is under test here."""


@asynccontextmanager
async def _clients(settings: Settings) -> AsyncIterator[dict[str, TestClient]]:
    async with AsyncExitStack() as stack:
        pool = make_pool(settings, min_size=1, max_size=2, name="talk-test-projector-health")
        await pool.open(wait=False)
        stack.push_async_callback(pool.close)
        apps: dict[str, web.Application] = {
            "command-api": command_api_app(settings),
            "query-api": query_api_app(settings),
            "projector": health_app(settings, Database(pool), SimpleNamespace(
                check=_ready_projection,
                readiness_checks=lambda: {"projection": _ready_projection})),
        }
        clients = {}
        for name, app in apps.items():
            clients[name] = await stack.enter_async_context(TestClient(TestServer(app)))
        yield clients


async def _readyz(clients: dict[str, TestClient]) -> dict[str, tuple[int, str, dict]]:
    out = {}
    for name, client in clients.items():
        resp = await client.get("/readyz")
        out[name] = (resp.status, resp.content_type, await resp.json(content_type=None))
    return out


async def test_not_ready_until_the_schema_is_at_the_codes_version(postgres_admin_url):
    name, url = new_database(postgres_admin_url, "talk_unmigrated")  # fresh: no tables at all
    try:
        settings = Settings(database_url=url, jwt_secret=TEST_SECRET, amqp_url=None,
                            log_level="WARNING", db_connect_timeout=2)
        latest = available_migrations()[-1]
        check = _migrate_check(url)
        assert check.returncode == EXIT_FINDINGS, check.stderr
        assert f"{len(available_migrations())} migration(s) pending" in check.stderr

        async with _clients(settings) as clients:
            for service, (status, ctype, body) in (await _readyz(clients)).items():
                assert status == 503, (service, body)
                assert ctype == "application/problem+json", service
                assert body["checks"]["postgres"] == "ok", (service, body)
                assert body["checks"]["schema"].startswith("failed: SchemaBehind"), body
                assert "talk migrate" in body["checks"]["schema"]
                assert body["detail"] == "not ready: schema", body

            # One migration behind is not ready either, and names the missing one.
            await apply_migrations(url, up_to=latest.version - 1)
            assert _migrate_check(url).returncode == EXIT_FINDINGS
            for service, (status, _, body) in (await _readyz(clients)).items():
                assert status == 503, service
                assert f"{latest.version:04d}_{latest.name}" in body["checks"]["schema"], body

            await apply_migrations(url)
            for service, (status, _, body) in (await _readyz(clients)).items():
                assert status == 200, (service, body)
                assert body["checks"]["schema"] == "ok"
        check = _migrate_check(url)
        assert check.returncode == EXIT_OK, check.stderr
        assert "up to date" in check.stderr
    finally:
        drop_database(postgres_admin_url, name)


async def test_migrate_check_wait_returns_once_the_schema_is_migrated(postgres_admin_url):
    """What the initContainers run: `talk migrate --check --wait` keeps checking while
    migrations are pending and exits 0 as soon as they are applied."""
    name, url = new_database(postgres_admin_url, "talk_waiting")
    try:
        env = {"PATH": "/usr/bin:/bin", "TALK_DATABASE_URL": url, "TALK_LOG_LEVEL": "INFO"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", "migrate", "--check", "--wait", "120",
            cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            seen: list[str] = []
            while not any("migration.waiting" in line for line in seen):  # it has checked once
                line = await asyncio.wait_for(proc.stderr.readline(), 60)
                assert line, f"`talk migrate --check --wait` ended early: {seen}"
                seen.append(line.decode())
            assert proc.returncode is None
            await apply_migrations(url)
            code = await asyncio.wait_for(proc.wait(), 60)
            rest = (await proc.stderr.read()).decode()
            assert code == EXIT_OK, seen + [rest]
            assert "the schema is up to date" in rest
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    finally:
        drop_database(postgres_admin_url, name)
