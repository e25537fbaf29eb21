"""Fixtures running the real parts in-process against the session's database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from events.notifier import CommitNotifier
from events.postgres_store import PostgresEventStore
from projector.runner import Projector
from tests.integration.publishing.proxy import TcpProxy
from tests.support import Running


@pytest.fixture()
async def store(db, settings) -> AsyncIterator[PostgresEventStore]:
    """The event store as the command API has it: wake-ups sent after each commit."""
    notifier = CommitNotifier(settings.database_url)
    await notifier.start()
    try:
        yield PostgresEventStore(db, notifier)
    finally:
        await notifier.stop()


class RunningProjector(Running):
    def __init__(self, projector: Projector) -> None:
        super().__init__(projector, "test-projector")

    @property
    def projector(self) -> Projector:
        return self.service


@pytest.fixture()
async def start_projector(settings) -> AsyncIterator:
    running: list[RunningProjector] = []

    def start(**kwargs) -> RunningProjector:
        rp = RunningProjector(Projector(settings, **kwargs))
        running.append(rp)
        return rp

    yield start
    for rp in running:
        if not rp.task.done():
            await rp.close()


@pytest.fixture()
async def projector(start_projector) -> RunningProjector:
    rp = start_projector()
    await asyncio.wait_for(rp.projector.active.wait(), 15)
    return rp


@pytest.fixture()
async def api(settings, projector) -> AsyncIterator[TestClient]:
    """The command and query APIs on one port (as ``talk up`` serves them), with a projector."""
    from services.up import build_up_app

    client = TestClient(TestServer(build_up_app(settings)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture()
async def proxy(amqp_url: str) -> AsyncIterator[TcpProxy]:
    """A TCP proxy to this session's RabbitMQ that the test can cut and restore."""
    target = urlsplit(amqp_url)
    p = await TcpProxy(target.hostname or "127.0.0.1", target.port or 5672).start()
    try:
        yield p
    finally:
        await p.close()
