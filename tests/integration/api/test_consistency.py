"""Read-your-writes on request: ``X-Talk-Min-Position`` (from a command's ``X-Talk-Position``)
makes a GET wait for the projection, and answers 503 with ``Retry-After`` when it does not
get there in time; a value no command answered (beyond the store's head) or a malformed one
is 400 at once, after authentication and the route's own checks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from aiohttp.test_utils import TestClient, TestServer

from events.envelope import Checkpoint
from events.position_token import format_position, parse_position
from query_api.consistency import WATCHER, ProjectionWatcher
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


BEYOND_THE_HEAD = [str(2**62), str(2**63), "9" * 39, str(2**64 * 10**19 + 1),
                   format_position(Checkpoint(2**62, 1)), format_position(Checkpoint(2**64 - 1, 0))]
MALFORMED = ["abc", "-1", "1.5", "", " , ", "1e3", "0x10", "1" * 40, ",".join(["1"] * 33)]


async def test_a_value_that_cannot_be_honoured_is_400_at_once_after_the_paths_checks(talk):
    alice = talk.agent()
    stranger = talk.agent()  # another customer
    colleague = talk.agent(alice.customer_id)  # same customer, not a participant
    chat = await alice.create_talk()
    message = await alice.post(chat, "hi")
    await alice.get_chat(chat)  # projected
    waits = _count_waits(talk.client.server.app[WATCHER])
    own = [f"{CHATS}/{chat['id']}", f"{CHATS}/{chat['id']}/participants", CHATS,
           f"{MESSAGES}/{message['id']}", f"{MESSAGES}?chat_id={chat['id']}"]
    for value in BEYOND_THE_HEAD + MALFORMED:
        header = {"X-Talk-Min-Position": value}
        for path in own:
            resp = await talk.client.get(path, headers={**alice.headers, **header})
            assert resp.status == 400, (value, path, await resp.text())
            assert resp.content_type == PROBLEM_JSON
            problem = await resp.json(content_type=None)
            assert problem["errors"][0]["field"] == "X-Talk-Min-Position"
        # the route's own refusals come first
        for who, path, status in [
                (stranger, f"{CHATS}/{chat['id']}", 404), (stranger, f"{MESSAGES}/{message['id']}", 404),
                (colleague, f"{CHATS}/{chat['id']}", 403), (alice, f"{CHATS}/not-a-uuid", 404),
                (alice, f"{MESSAGES}/{uuid4()}", 404), (alice, f"{CHATS}?page_size=0", 400)]:
            resp = await talk.client.get(path, headers={**who.headers, **header})
            assert resp.status == status, (value, path, await resp.text())
            assert resp.content_type == PROBLEM_JSON
        resp = await talk.client.get(f"{CHATS}/{chat['id']}", headers=header)
        assert resp.status == 401
    assert waits == [], "a value that cannot be honoured never waits"
    for nothing_to_wait_for in ("0", "0" * 39, "0, 0"):
        resp = await talk.client.get(CHATS, headers={**alice.headers,
                                                     "X-Talk-Min-Position": nothing_to_wait_for})
        assert resp.status == 200


async def test_a_position_not_projected_in_time_is_503_with_retry_after(settings, projector, db):
    quick = settings.model_copy(update={"read_your_writes_timeout": 0.2})
    client = TestClient(TestServer(build_up_app(quick)))
    await client.start_server()
    try:
        auth = bearer(*_ids())
        resp = await client.post(CHATS, json={"type": "group"}, headers=auth)
        assert resp.status == 200
        position = resp.headers["X-Talk-Position"]
        await projector.close()
        later = await client.post(CHATS, json={"type": "group"}, headers=auth)
        for value in (later.headers["X-Talk-Position"], f"{position},{later.headers['X-Talk-Position']}",
                      str(parse_position(later.headers["X-Talk-Position"]).position)):
            resp = await client.get(CHATS, headers={**auth, "X-Talk-Min-Position": value})
            assert resp.status == 503, value
            assert resp.content_type == PROBLEM_JSON
            assert resp.headers["Retry-After"] == "1"
            assert (await resp.json(content_type=None))["status"] == 503
    finally:
        await client.close()


def _count_waits(watcher: ProjectionWatcher) -> list[object]:
    """The targets the query API waited for (it waits only for what it can honour)."""
    waited: list[object] = []
    wait_for = watcher.wait_for

    async def counted(store, target, timeout):
        waited.append(target)
        return await wait_for(store, target, timeout)

    watcher.wait_for = counted  # type: ignore[method-assign]
    return waited


def _ids():
    return uuid4(), uuid4()
