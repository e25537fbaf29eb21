"""A throw-away PostgreSQL cluster per test (tests/integration/outage/cluster.py), started,
with a migrated database ``talk``; stopped and deleted afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import psycopg
import pytest

from tests.integration.outage.cluster import ThrowawayCluster


@pytest.fixture()
def cluster() -> Iterator[ThrowawayCluster]:
    from services.migrate import apply_migrations

    try:
        server = ThrowawayCluster()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        server.start()
        with psycopg.connect(server.admin_url, autocommit=True) as conn:
            conn.execute("CREATE DATABASE talk")
        asyncio.run(apply_migrations(server.url("talk")))
        yield server
    finally:
        server.remove()
