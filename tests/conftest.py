"""Session-wide fixtures: a fresh database per test session (migrated), RabbitMQ discovery,
settings built once, and helpers to run the services in-process."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack

import pytest
import structlog

from tests import watchdog
from tests.infra import (
    InfrastructureMissing,
    create_database,
    drop_database,
    find_postgres,
    find_rabbitmq,
)
from tests.support import TEST_SECRET

WATCHDOG = pytest.StashKey[watchdog.Watchdog]()


def pytest_configure(config: pytest.Config) -> None:
    """Logs as the services write them (JSON), at WARNING, so test output stays readable."""
    from services.logging import configure_logging
    from services.settings import Settings

    configure_logging(Settings(log_level="WARNING"))
    config.stash[WATCHDOG] = watchdog.install(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    if WATCHDOG in config.stash:
        config.stash[WATCHDOG].session_finished()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Each test (setup, call, teardown) runs under the hang watchdog (tests/watchdog.py)."""
    dog = item.config.stash[WATCHDOG]
    dog.test_started(item.nodeid)
    try:
        return (yield)
    finally:
        dog.test_ended()


@pytest.fixture(scope="session")
def _infra_stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


@pytest.fixture(scope="session")
def postgres_admin_url(_infra_stack: ExitStack) -> str:
    try:
        return find_postgres(_infra_stack)
    except InfrastructureMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def amqp_url(_infra_stack: ExitStack) -> str:
    try:
        return find_rabbitmq(_infra_stack)
    except InfrastructureMissing as exc:
        pytest.fail(str(exc), pytrace=False)


def new_database(admin_url: str, prefix: str = "talk_test") -> tuple[str, str]:
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    return name, create_database(admin_url, name)


@pytest.fixture(scope="session")
def database_url(postgres_admin_url: str) -> Iterator[str]:
    """This session's own fresh, migrated database."""
    from services.migrate import apply_migrations

    name, url = new_database(postgres_admin_url)
    asyncio.run(apply_migrations(url))
    yield url
    drop_database(postgres_admin_url, name)


@pytest.fixture()
def fresh_database_url(postgres_admin_url: str) -> Iterator[str]:
    """A database of its own for one test (migrated), for tests that need an empty store."""
    from services.migrate import apply_migrations

    name, url = new_database(postgres_admin_url, "talk_t")
    asyncio.run(apply_migrations(url))
    yield url
    drop_database(postgres_admin_url, name)


@pytest.fixture(scope="session")
def settings(database_url: str):
    from services.settings import Settings

    return Settings(database_url=database_url, jwt_secret=TEST_SECRET, amqp_url=None,
                    projector_poll_interval=0.2, log_level="WARNING")


@pytest.fixture()
async def db(settings) -> AsyncIterator:
    from services.db import Database, make_pool

    pool = make_pool(settings, min_size=1, max_size=20, name="talk-tests")
    await pool.open()
    try:
        yield Database(pool)
    finally:
        await pool.close()


@pytest.fixture()
def info_logs():
    """Info lines reach the capture even if an earlier test configured a higher level."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    try:
        yield
    finally:
        structlog.configure(**saved)
