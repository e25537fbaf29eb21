"""Idempotent POST: a retry with the same ``Idempotency-Key`` answers the first response
without new events; the same key with another request is 422; keys are per caller."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from tests.integration.api.conftest import CHATS, MESSAGES, V

KEY = "Idempotency-Key"


async def _send(agent, path, body, key):
    resp = await agent.request("POST", path, json=body, headers={KEY: key})
    return resp, await resp.read()


async def test_a_retry_answers_the_first_response_without_new_events(talk):
    alice = talk.agent()
    key = str(uuid4())
    first, first_body = await _send(alice, CHATS, {"type": "group", "name": "once"}, key)
    assert first.status == 200
    before = await talk.event_count()
    for _ in range(2):
        again, again_body = await _send(alice, CHATS, {"type": "group", "name": "once"}, key)
        assert again.status == 200
        assert again_body == first_body
        assert again.headers["X-Talk-Position"] == first.headers["X-Talk-Position"]
        assert again.headers["Idempotent-Replayed"] == "true"
    assert await talk.event_count() == before
    assert [c["name"] for c in (await alice.ok("GET", CHATS))["result"]] == ["once"]


@pytest.mark.parametrize("path_of", [
    pytest.param(lambda chat, msg: (MESSAGES, {"chat_id": chat["id"], "text": "hi"}), id="post-message"),
    pytest.param(lambda chat, msg: (f"{MESSAGES}/{msg['id']}/reactions", {"emoji": "tada"}), id="react"),
    pytest.param(lambda chat, msg: (f"{V}/talks/{chat['id']}/messages", {"text": "hi"}), id="short-post"),
])
async def test_every_post_honours_the_key(talk, path_of):
    alice = talk.agent()
    chat = await alice.create_talk()
    message = await alice.post(chat, "target")
    path, body = path_of(chat, message)
    key = "k-" + uuid4().hex
    first, first_body = await _send(alice, path, body, key)
    assert first.status == 200
    before = await talk.event_count()
    again, again_body = await _send(alice, path, body, key)
    assert (again.status, again_body) == (200, first_body)
    assert await talk.event_count() == before


async def test_adding_a_participant_twice_with_one_key_replays_instead_of_409(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk()
    path, body, key = f"{CHATS}/{chat['id']}/participants", {"owner_type": "agent", "owner_id": bob.id}, "add-bob"
    first, first_body = await _send(alice, path, body, key)
    again, again_body = await _send(alice, path, body, key)
    assert (first.status, again.status) == (200, 200) and first_body == again_body
    await alice.problem(409, "POST", path, json=body)  # without the key it is a second add


async def test_the_same_key_with_another_request_is_422(talk):
    alice = talk.agent()
    key = "reused"
    first, _ = await _send(alice, CHATS, {"type": "group", "name": "first"}, key)
    assert first.status == 200
    chat = await first.json()
    await alice.problem(422, "POST", CHATS, json={"type": "group", "name": "second"},
                        headers={KEY: key})
    await alice.problem(422, "POST", MESSAGES, json={"chat_id": chat["id"], "text": "hi"},
                        headers={KEY: key})
    assert len((await alice.ok("GET", CHATS))["result"]) == 1


async def test_callers_have_their_own_keys(talk):
    alice = talk.agent()
    colleague = alice.colleague()
    stranger = talk.agent()
    key = "shared-key"
    answers = []
    for agent in (alice, colleague, stranger):
        resp, _ = await _send(agent, CHATS, {"type": "group", "name": agent.id}, key)
        assert resp.status == 200
        answers.append(await resp.json())
    assert len({a["id"] for a in answers}) == 3
    for agent, chat in zip((alice, colleague, stranger), answers, strict=True):
        assert [c["id"] for c in (await agent.ok("GET", CHATS))["result"]] == [chat["id"]]


async def test_concurrent_requests_with_one_key_append_once(talk):
    alice = talk.agent()
    chat = await alice.create_talk()
    key = "burst-" + uuid4().hex
    before = await talk.event_count()
    results = await asyncio.gather(*(
        _send(alice, MESSAGES, {"chat_id": chat["id"], "text": "once"}, key) for _ in range(8)))
    assert {resp.status for resp, _ in results} == {200}
    assert len({body for _, body in results}) == 1
    assert len({resp.headers["X-Talk-Position"] for resp, _ in results}) == 1
    assert await talk.event_count() == before + 1
    assert [m["text"] for m in await alice.messages(chat) if m["type"] == "normal"] == ["once"]


@pytest.mark.parametrize("key", [pytest.param("k" * 256, id="too-long"), pytest.param("", id="empty")])
async def test_bad_keys_are_400(talk, key):
    alice = talk.agent()
    await alice.problem(400, "POST", CHATS, json={"type": "group"}, headers={KEY: key})


async def test_a_refused_request_does_not_burn_the_key(talk):
    alice = talk.agent()
    chat = await alice.create_talk()
    key = "fix-and-retry"
    await alice.problem(400, "POST", MESSAGES, json={"chat_id": chat["id"], "text": ""},
                        headers={KEY: key})
    await alice.problem(404, "POST", MESSAGES, json={"chat_id": str(uuid4()), "text": "x"},
                        headers={KEY: key})
    resp, _ = await _send(alice, MESSAGES, {"chat_id": chat["id"], "text": "fixed"}, key)
    assert resp.status == 200


async def test_the_same_json_written_differently_is_the_same_request(talk):
    alice = talk.agent()
    key = "spacing"
    first = await alice.request("POST", CHATS, data=b'{"type": "group", "name": "same"}',
                                headers={KEY: key, "Content-Type": "application/json"})
    assert first.status == 200
    before = await talk.event_count()
    again = await alice.request("POST", CHATS, data=b'{ "name":"same",\n "type":"group" }',
                                headers={KEY: key, "Content-Type": "application/json"})
    assert again.status == 200
    assert await again.read() == await first.read()
    assert await talk.event_count() == before
