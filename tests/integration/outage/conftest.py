"""A throw-away PostgreSQL cluster (tests/integration/outage/cluster.py), started, with a
migrated database ``talk``; stopped and deleted afterwards. ``cluster`` is one per test;
``module_cluster`` one per module (started again before each test if a test left it down)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from tests.integration.outage.cluster import ThrowawayCluster


@contextmanager
def _migrated_cluster() -> Iterator[ThrowawayCluster]:
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


@pytest.fixture()
def cluster() -> Iterator[ThrowawayCluster]:
    with _migrated_cluster() as server:
        yield server


@pytest.fixture(scope="module")
def _module_cluster() -> Iterator[ThrowawayCluster]:
    with _migrated_cluster() as server:
        yield server


@pytest.fixture()
def module_cluster(_module_cluster: ThrowawayCluster) -> ThrowawayCluster:
    _module_cluster.ensure_running()
    return _module_cluster
