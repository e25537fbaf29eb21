"""Two ``talk projector`` processes publishing at once, as the Deployment runs them, while
agents post into several talks; the one publishing is killed (SIGKILL) midway and started
again. A consumer deduplicating by ``message_id`` gets every event once, in order per talk."""

from __future__ import annotations

import asyncio
import signal
from uuid import uuid4

from aiohttp.test_utils import TestClient, TestServer

from projector.publisher import PUBLISHER_LOCK
from services.up import build_up_app
from tests.integration.projector.processes import active_one, start_projector
from tests.integration.publishing.caller import Caller
from tests.integration.publishing.test_confirm_failures import assert_each_once_in_order
from tests.support import wait_until

TALKS, POSTS = 4, 40


async def test_two_publisher_processes_each_event_once_in_order(
        fresh_database_url, amqp_settings, open_tap):
    url = fresh_database_url
    local = amqp_settings.model_copy(update={"database_url": url, "amqp_url": None})
    talk = {"amqp_url": amqp_settings.amqp_url, "exchange": amqp_settings.exchange,
            "stream_queue": amqp_settings.stream_queue}
    customer = uuid4()
    tap = await open_tap(f"{customer}.#")
    procs = [await start_projector(url, 50, **talk), await start_projector(url, 50, **talk)]
    try:
        first = await wait_until(lambda: active_one(url, procs, PUBLISHER_LOCK),
                                 timeout=30, what="one publisher active")
        async with TestClient(TestServer(build_up_app(local))) as client:
            alice = Caller(client, customer, uuid4())
            chats = [(await alice.create_group(uuid4(), name=f"talk {i}"))[0]["id"]
                     for i in range(TALKS)]
            posted = {"n": 0}
            halfway = asyncio.Event()

            async def writer(chat_id: str) -> None:
                for i in range(POSTS):
                    await alice.post(chat_id, f"message {i}")
                    posted["n"] += 1
                    if posted["n"] == TALKS * POSTS // 2:
                        halfway.set()

            async def failover() -> None:
                await halfway.wait()
                await tap.wait_for(TALKS * 2 + 10, "publishing under way", timeout=60)
                first.send(signal.SIGKILL)  # the publishing process dies mid-stream
                assert await first.exit_code(10) == -signal.SIGKILL
                other = await wait_until(lambda: active_one(url, procs, PUBLISHER_LOCK),
                                         timeout=30, what="the other process publishing")
                assert other is not first
                procs.append(await start_projector(url, 50, **talk))  # back as a standby

            await asyncio.gather(*(writer(c) for c in chats), failover())
        ids = await assert_each_once_in_order(url, customer, tap)
        assert len(ids) > TALKS * POSTS
    finally:
        for proc in procs:
            await proc.kill()
