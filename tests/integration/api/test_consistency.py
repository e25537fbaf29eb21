"""Read-your-writes on request: ``X-Talk-Min-Position`` (from a command's ``X-Talk-Position``)
makes a GET wait for the projection, and answers 503 with ``Retry-After`` when it does not
get there in time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from query_api.context import READ_STORE
from query_api.read_store import ReadStore
from services.http.problems import PROBLEM_JSON
from services.up import build_up_app
from tests.integration.api.conftest import CHATS, MESSAGES, TalkClient, api_settings
from tests.support import bearer


@pytest.fixture()
async def talk(settings, projector, db) -> AsyncIterator[TalkClient]:
    """These tests stop and start the projector: an API and a projector of their own."""
    client = TestClient(TestServer(build_up_app(api_settings(settings))))
    await client.start_server()
    try:
        yield TalkClient(client, db)
    finally:
        await client.close()


async def test_every_command_answers_a_growing_position(talk):
    alice = talk.agent()
    positions = []
    chat = await alice.create_talk()
    positions.append(talk.position)
    message = await alice.post(chat, "one")
    positions.append(talk.position)
    await alice.react(message, "tada")
    positions.append(talk.position)
    await alice.ok("PUT", f"{CHATS}/{chat['id']}", json={"name": "renamed"})
    positions.append(talk.position)
    assert positions == sorted(set(positions))


async def test_a_get_waits_for_the_projection(talk, projector, start_projector):
    alice = talk.agent()
    chat = await alice.create_talk()
    await alice.get_chat(chat)  # projected
    await projector.close()

    resp = await alice.request("POST", MESSAGES, json={"chat_id": chat["id"], "text": "fresh"})
    assert resp.status == 200
    message = await resp.json()
    position = resp.headers["X-Talk-Position"]
    # Without the header the read model is behind: the message is not there yet.
    stale = await talk.client.get(f"{MESSAGES}/{message['id']}", headers=alice.headers)
    assert stale.status == 404

    held = _watch_waits(talk.client.server.app[READ_STORE])
    waiting = asyncio.create_task(talk.client.get(
        f"{MESSAGES}/{message['id']}", headers={**alice.headers, "X-Talk-Min-Position": position}))
    await asyncio.wait_for(held.wait(), 10)  # the server checked, found it behind, and waits
    assert not waiting.done()
    restarted = start_projector()
    await asyncio.wait_for(restarted.projector.active.wait(), 15)
    resp = await waiting
    assert resp.status == 200
    assert await resp.json() == message


def _watch_waits(store: ReadStore) -> asyncio.Event:
    """An event set once the query API has found the projection behind a position."""
    behind = asyncio.Event()
    check = store.projection_reached

    async def projection_reached(position: int) -> bool:
        reached = await check(position)
        if not reached:
            behind.set()
        return reached

    store.projection_reached = projection_reached  # type: ignore[method-assign]
    return behind


async def test_a_position_far_ahead_is_503_with_retry_after(settings, projector, db):
    quick = settings.model_copy(update={"read_your_writes_timeout": 0.2})
    client = TestClient(TestServer(build_up_app(quick)))
    await client.start_server()
    try:
        auth = bearer(*_ids())
        resp = await client.get(CHATS, headers={**auth, "X-Talk-Min-Position": str(2**62)})
        assert resp.status == 503
        assert resp.content_type == PROBLEM_JSON
        assert resp.headers["Retry-After"] == "1"
        assert (await resp.json(content_type=None))["status"] == 503
        for bad in ("abc", "-1", "1.5", ""):
            resp = await client.get(CHATS, headers={**auth, "X-Talk-Min-Position": bad})
            assert resp.status == 400, bad
            assert resp.content_type == PROBLEM_JSON
        resp = await client.get(CHATS, headers={**auth, "X-Talk-Min-Position": "0"})
        assert resp.status == 200
    finally:
        await client.close()


def _ids():
    from uuid import uuid4

    return uuid4(), uuid4()
