"""A primary with a migrated database ``talk`` and a hot standby of it, for the module's
tests (tests/integration/standby/replication.py); stopped and deleted afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest

from tests.integration.standby.replication import Replicated


@pytest.fixture(scope="module")
def replicated() -> Iterator[Replicated]:
    from services.migrate import apply_migrations

    try:
        servers = Replicated()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        servers.start_primary()
        with psycopg.connect(servers.primary.admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE talk")
        asyncio.run(apply_migrations(servers.primary.url("talk")))
        servers.start_standby()
        yield servers
    finally:
        servers.remove()
