"""Messages: post (text, medias, type), threads, edit, soft delete."""

from __future__ import annotations

from uuid import uuid4

import orjson
import pytest

from tests.integration.api.conftest import MESSAGE_FIELDS, MESSAGES, V, is_timestamp

PNG = {"type": "image/png", "url": "https://cdn.example.com/a.png", "name": "a.png"}


async def test_post_answers_the_message(talk):
    alice = talk.agent()
    chat = await alice.create_talk()
    message = await alice.post(chat, "hello", medias=[PNG])
    assert set(message) == MESSAGE_FIELDS
    assert message["customer_id"] == str(alice.customer_id)
    assert (message["owner_type"], message["owner_id"]) == ("agent", alice.id)
    assert (message["chat_id"], message["parent_id"], message["type"]) == (chat["id"], "", "normal")
    assert (message["text"], message["medias"]) == ("hello", [PNG])
    assert message["metadata"] == {"reactions": []}
    assert is_timestamp(message["tm_create"])
    assert message["tm_update"] == message["tm_create"] and message["tm_delete"] == ""
    assert (message["reply_count"], message["tm_last_reply"]) == (0, "")
    assert await alice.get_message(message) == message
    assert (await alice.messages(chat))[0] == message


async def test_limits_that_are_allowed(talk):
    alice = talk.agent()
    chat = await alice.create_talk()
    longest = await alice.post(chat, "x" * 10_000)
    assert len(longest["text"]) == 10_000
    media_only = await alice.post(chat, "", medias=[PNG] * 10)
    assert media_only["text"] == "" and len(media_only["medias"]) == 10
    no_name = await alice.post(chat, "", medias=[{"type": "application/pdf", "url": "http://h/x.pdf"}])
    assert no_name["medias"] == [{"type": "application/pdf", "url": "http://h/x.pdf", "name": ""}]
    emoji_text = await alice.post(chat, "héllo 👋")
    assert (await alice.get_message(emoji_text))["text"] == "héllo 👋"


def _media(**over):
    return {**PNG, **over}


@pytest.fixture(scope="module")
async def quiet_talk(module_talk):
    """A talk the bad posts below must leave without a message."""
    alice = module_talk.agent()
    return alice, await alice.create_talk()


@pytest.mark.parametrize("fields", [
    pytest.param({"type": "system"}, id="agents-cannot-post-system"),
    pytest.param({"type": "shout"}, id="unknown-type"),
    pytest.param({"text": "x" * 10_001}, id="text-too-long"),
    pytest.param({"text": ""}, id="text-required"),
    pytest.param({"text": "   "}, id="text-blank"),
    pytest.param({"text": None}, id="text-null"),
    pytest.param({"text": "a\x00b"}, id="text-nul"),
    pytest.param({"text": "", "medias": []}, id="no-text-no-medias"),
    pytest.param({"medias": [PNG] * 11}, id="eleven-medias"),
    pytest.param({"medias": [_media(url="ftp://h/a.png")]}, id="media-url-ftp"),
    pytest.param({"medias": [_media(url="https://")]}, id="media-url-no-host"),
    pytest.param({"medias": [_media(url="not a url")]}, id="media-url-garbage"),
    pytest.param({"medias": [_media(url="https://h/" + "a" * 2040)]}, id="media-url-too-long"),
    pytest.param({"medias": [_media(type="image")]}, id="media-type-not-mime"),
    pytest.param({"medias": [_media(type="")]}, id="media-type-empty"),
    pytest.param({"medias": [{"url": PNG["url"], "name": "a"}]}, id="media-type-missing"),
    pytest.param({"medias": [_media(name="n" * 256)]}, id="media-name-too-long"),
    pytest.param({"medias": [_media(name=3)]}, id="media-name-not-a-string"),
    pytest.param({"medias": "a.png"}, id="medias-not-a-list"),
    pytest.param({"parent_id": "nope"}, id="parent-not-a-uuid"),
])
async def test_post_rejects_bad_input(quiet_talk, fields):
    alice, chat = quiet_talk
    body = {"chat_id": chat["id"], "type": "normal", "text": "hi", **fields}
    problem = await alice.problem(400, "POST", MESSAGES, json=body)
    assert problem["errors"]
    assert [m for m in await alice.messages(chat) if m["type"] == "normal"] == []


async def test_post_needs_a_talk(talk):
    alice = talk.agent()
    await alice.problem(400, "POST", MESSAGES, json={"text": "hi"})
    await alice.problem(400, "POST", MESSAGES, json={"chat_id": "x", "text": "hi"})
    await alice.problem(404, "POST", MESSAGES, json={"chat_id": str(uuid4()), "text": "hi"})


async def test_a_body_over_one_mebibyte_is_413(talk):
    alice = talk.agent()
    chat = await alice.create_talk()
    huge = orjson.dumps({"chat_id": chat["id"], "text": "x" * (1024 * 1024)})
    await alice.problem(413, "POST", MESSAGES, data=huge,
                        headers={"Content-Type": "application/json"})


async def test_parent_must_be_in_the_same_talk(talk):
    alice = talk.agent()
    chat = await alice.create_talk()
    other = await alice.create_talk()
    elsewhere = await alice.post(other, "elsewhere")
    body = await alice.problem(404, "POST", MESSAGES, json={
        "chat_id": chat["id"], "text": "reply", "parent_id": elsewhere["id"]})
    assert body["type"] == "https://talk.dev/problems/parent-not-found"
    foreign = talk.agent()
    foreign_msg = await foreign.post(await foreign.create_talk(), "theirs")
    for parent_id in (foreign_msg["id"], str(uuid4())):  # another customer's, or none
        body = await alice.problem(404, "POST", MESSAGES, json={
            "chat_id": chat["id"], "text": "reply", "parent_id": parent_id})
        assert body["type"] == "https://talk.dev/problems/parent-not-found"


async def test_threads_nest_and_survive_a_deleted_parent(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk(members=(bob,))
    root = await alice.post(chat, "root")
    reply = await bob.post(chat, "reply", parent_id=root["id"])
    assert reply["parent_id"] == root["id"]
    nested = await alice.post(chat, "nested", parent_id=reply["id"])
    assert nested["parent_id"] == reply["id"]
    await alice.ok("DELETE", f"{MESSAGES}/{root['id']}")
    late = await bob.post(chat, "late reply", parent_id=root["id"])
    assert late["parent_id"] == root["id"]

    thread = await alice.messages(chat, parent_id=root["id"])
    assert [m["id"] for m in thread] == [late["id"], reply["id"]]
    assert [m["id"] for m in await alice.messages(chat, parent_id=reply["id"])] == [nested["id"]]
    assert await alice.messages(chat, parent_id=nested["id"]) == []
    everything = await alice.messages(chat)
    assert {root["id"], reply["id"], nested["id"], late["id"]} <= {m["id"] for m in everything}
    tomb = next(m for m in everything if m["id"] == root["id"])
    assert is_timestamp(tomb["tm_delete"]) and tomb["text"] == ""


async def test_edit(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk(members=(bob,))
    message = await alice.post(chat, "frist", medias=[PNG])
    edited = await alice.ok("PUT", f"{MESSAGES}/{message['id']}", json={"text": "first"})
    assert set(edited) == MESSAGE_FIELDS
    assert edited["text"] == "first" and edited["medias"] == [PNG]
    assert is_timestamp(edited["tm_update"]) and edited["tm_update"] >= edited["tm_create"]
    assert edited["tm_create"] == message["tm_create"] and edited["tm_delete"] == ""
    assert await bob.get_message(message) == edited

    path = f"{MESSAGES}/{message['id']}"
    await bob.problem(403, "PUT", path, json={"text": "not mine"})
    await alice.problem(400, "PUT", path, json={"text": "x" * 10_001})
    await alice.problem(400, "PUT", path, json={"text": None})
    await alice.problem(400, "PUT", path, json={})
    await alice.problem(404, "PUT", f"{MESSAGES}/{uuid4()}", json={"text": "x"})
    await alice.problem(404, "PUT", f"{MESSAGES}/not-a-uuid", json={"text": "x"})
    system = next(m for m in await alice.messages(chat) if m["type"] == "system")
    await alice.problem(403, "PUT", f"{MESSAGES}/{system['id']}", json={"text": "rewrite"})
    await alice.ok("DELETE", path)
    await alice.problem(409, "PUT", path, json={"text": "too late"})
    assert (await alice.get_message(message))["text"] == ""


async def test_a_media_message_may_be_edited_to_no_text(talk):
    alice = talk.agent()
    chat = await alice.create_talk()
    with_media = await alice.post(chat, "caption", medias=[PNG])
    edited = await alice.ok("PUT", f"{MESSAGES}/{with_media['id']}", json={"text": ""})
    assert (edited["text"], edited["medias"]) == ("", [PNG])
    text_only = await alice.post(chat, "words")
    body = await alice.problem(409, "PUT", f"{MESSAGES}/{text_only['id']}", json={"text": ""})
    assert body["type"] == "https://talk.dev/problems/text-required"


async def test_delete_leaves_a_tombstone_and_again_is_a_noop(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk(members=(bob,))
    message = await alice.post(chat, "secret", medias=[PNG])
    await bob.react(message, "eyes")
    path = f"{MESSAGES}/{message['id']}"
    await bob.problem(403, "DELETE", path)

    first = await alice.request("DELETE", path)
    assert first.status == 200
    tomb = await first.json()
    assert set(tomb) == MESSAGE_FIELDS
    assert (tomb["text"], tomb["medias"]) == ("", [])
    assert is_timestamp(tomb["tm_delete"])
    assert [r["emoji"] for r in tomb["metadata"]["reactions"]] == ["eyes"]

    before = await talk.event_count()
    again = await alice.request("DELETE", path)
    assert again.status == 200
    assert await again.json() == tomb
    assert again.headers["X-Talk-Position"] == first.headers["X-Talk-Position"]
    assert await talk.event_count() == before
    assert await alice.get_message(message) == tomb
    assert await bob.get_message(message) == tomb


async def test_short_forms(talk):
    alice = talk.agent()
    chat = await alice.create_talk()
    message = await alice.ok("POST", f"{V}/talks/{chat['id']}/messages", json={"text": "short"})
    assert set(message) == MESSAGE_FIELDS and message["chat_id"] == chat["id"]
    reply = await alice.ok("POST", f"{V}/talks/{chat['id']}/messages",
                           json={"text": "re", "parent_id": message["id"]})
    assert reply["parent_id"] == message["id"]
    page = await alice.ok("GET", f"{V}/talks/{chat['id']}/messages", params={"page_size": 2})
    assert [m["id"] for m in page["result"]] == [reply["id"], message["id"]]
    assert page["next_page_token"]
    page = await alice.ok("GET", f"{V}/talks/{chat['id']}/messages",
                          params={"parent_id": message["id"]})
    assert page == {"result": [reply], "next_page_token": ""}
    await alice.problem(400, "POST", f"{V}/talks/{chat['id']}/messages", json={"text": ""})
    await alice.problem(404, "POST", f"{V}/talks/{uuid4()}/messages", json={"text": "x"})
    await alice.problem(404, "GET", f"{V}/talks/{uuid4()}/messages")
