"""Talks: create, update, soft delete, member_count, and writes into a deleted talk."""

from __future__ import annotations

from uuid import uuid4

import pytest

from tests.integration.api.conftest import (
    CHAT_FIELDS,
    CHATS,
    MESSAGES,
    V,
    is_timestamp,
    without_viewer,
)


async def test_create_answers_the_talk_with_the_creator_in_it(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk("group", members=(bob,), name="support", detail="tier 2")
    assert set(chat) == CHAT_FIELDS
    assert chat["customer_id"] == str(alice.customer_id)
    assert (chat["type"], chat["name"], chat["detail"]) == ("group", "support", "tier 2")
    assert chat["member_count"] == 2
    assert is_timestamp(chat["tm_create"])
    assert chat["tm_update"] == chat["tm_create"] and chat["tm_delete"] == ""
    assert without_viewer(await alice.get_chat(chat)) == chat
    owners = {p["owner_id"] for p in await alice.participants(chat)}
    assert owners == {alice.id, bob.id}


async def test_create_defaults_and_dedupes_participants(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.ok("POST", CHATS, json={"type": "normal", "participants": [
        {"owner_type": "agent", "owner_id": bob.id},
        {"owner_type": "agent", "owner_id": bob.id},
        {"owner_type": "agent", "owner_id": alice.id},
    ]})
    assert (chat["name"], chat["detail"], chat["member_count"]) == ("", "", 2)


@pytest.mark.parametrize("body", [
    pytest.param({}, id="no-type"),
    pytest.param({"type": "channel"}, id="unknown-type"),
    pytest.param({"type": "group", "name": "n" * 256}, id="long-name"),
    pytest.param({"type": "group", "detail": "d" * 10_001}, id="long-detail"),
    pytest.param({"type": "group", "name": 5}, id="name-not-a-string"),
    pytest.param({"type": "group", "participants": [{"owner_type": "user", "owner_id": str(uuid4())}]},
                 id="owner-type-not-agent"),
    pytest.param({"type": "group", "participants": [{"owner_type": "agent", "owner_id": "x"}]},
                 id="owner-id-not-a-uuid"),
    pytest.param({"type": "group", "participants": "everyone"}, id="participants-not-a-list"),
    pytest.param({"type": "group", "name": "a\x00b"}, id="nul-in-name"),
])
async def test_create_rejects_bad_input(talk, body):
    await talk.agent().problem(400, "POST", CHATS, json=body)


async def test_a_normal_talk_holds_two(talk):
    alice = talk.agent()
    bob, carol = alice.colleague(), alice.colleague()
    await alice.problem(409, "POST", CHATS, json={"type": "normal", "participants": [
        {"owner_type": "agent", "owner_id": bob.id}, {"owner_type": "agent", "owner_id": carol.id}]})
    chat = await alice.create_talk("normal", members=(bob,))
    body = await alice.problem(409, "POST", f"{CHATS}/{chat['id']}/participants",
                               json={"owner_type": "agent", "owner_id": carol.id})
    assert "at most 2" in body["detail"]
    # Once one leaves, there is room again.
    await bob.remove(chat, await bob.participant_of(chat, bob))
    await alice.add(chat, carol)
    assert (await alice.get_chat(chat))["member_count"] == 2


async def test_update_name_and_detail(talk):
    alice = talk.agent()
    chat = await alice.create_talk(name="old", detail="old detail")
    renamed = await alice.ok("PUT", f"{CHATS}/{chat['id']}", json={"name": "new"})
    assert set(renamed) == CHAT_FIELDS
    assert (renamed["name"], renamed["detail"]) == ("new", "old detail")
    assert is_timestamp(renamed["tm_update"]) and renamed["tm_update"] >= chat["tm_create"]
    assert renamed["tm_create"] == chat["tm_create"]
    redetailed = await alice.ok("PUT", f"{CHATS}/{chat['id']}", json={"detail": ""})
    assert (redetailed["name"], redetailed["detail"]) == ("new", "")
    assert without_viewer(await alice.get_chat(chat)) == redetailed


@pytest.fixture(scope="module")
async def kept_talk(module_talk):
    """One talk named "kept" that the bad updates below must leave alone."""
    alice = module_talk.agent()
    return alice, await alice.create_talk(name="kept")


@pytest.mark.parametrize("body", [
    pytest.param({}, id="neither"),
    pytest.param({"name": None, "detail": None}, id="both-null"),
    pytest.param({"name": "n" * 256}, id="long-name"),
    pytest.param({"detail": ["x"]}, id="detail-not-a-string"),
])
async def test_update_rejects_bad_input(kept_talk, body):
    alice, chat = kept_talk
    await alice.problem(400, "PUT", f"{CHATS}/{chat['id']}", json=body)
    assert (await alice.get_chat(chat))["name"] == "kept"


async def test_member_count_follows_joins_and_leaves(talk):
    alice = talk.agent()
    others = [alice.colleague() for _ in range(3)]
    chat = await alice.create_talk()
    for n, agent in enumerate(others, start=2):
        await alice.add(chat, agent)
        assert (await alice.get_chat(chat))["member_count"] == n
    for n, agent in enumerate(others, start=0):
        await alice.remove(chat, await alice.participant_of(chat, agent))
        assert (await alice.get_chat(chat))["member_count"] == 3 - n
    assert len(await alice.participants(chat)) == 1


async def test_delete_is_soft_and_later_writes_conflict(talk):
    alice = talk.agent()
    bob = alice.colleague()
    carol = alice.colleague()
    chat = await alice.create_talk(members=(bob,), name="doomed")
    message = await bob.post(chat, "before")
    await alice.react(message, "thumbsup")
    bob_p = await alice.participant_of(chat, bob)

    deleted = await alice.ok("DELETE", f"{CHATS}/{chat['id']}")
    assert set(deleted) == CHAT_FIELDS
    assert is_timestamp(deleted["tm_delete"])
    assert deleted["name"] == "doomed" and deleted["member_count"] == 2

    # Reads still show it, with tm_delete set; the list of my talks no longer does.
    assert without_viewer(await alice.get_chat(chat)) == deleted
    listed = await alice.ok("GET", CHATS)
    assert chat["id"] not in {c["id"] for c in listed["result"]}
    assert [m["text"] for m in await alice.messages(chat) if m["type"] == "normal"] == ["before"]

    cid, mid = chat["id"], message["id"]
    writes = [
        (alice, "PUT", f"{CHATS}/{cid}", {"name": "x"}),
        (alice, "DELETE", f"{CHATS}/{cid}", None),
        (alice, "POST", f"{CHATS}/{cid}/participants", {"owner_type": "agent", "owner_id": carol.id}),
        (alice, "DELETE", f"{CHATS}/{cid}/participants/{bob_p['id']}", None),
        (bob, "POST", MESSAGES, {"chat_id": cid, "text": "after"}),
        (bob, "POST", f"{MESSAGES}", {"chat_id": cid, "text": "reply", "parent_id": mid}),
        (bob, "PUT", f"{MESSAGES}/{mid}", {"text": "edited"}),
        (bob, "DELETE", f"{MESSAGES}/{mid}", None),
        (bob, "POST", f"{MESSAGES}/{mid}/reactions", {"emoji": "tada"}),
        (alice, "DELETE", f"{MESSAGES}/{mid}/reactions", {"emoji": "thumbsup"}),
        (alice, "POST", f"{V}/talks/{cid}/participants", {"agent_id": carol.id}),
        (bob, "POST", f"{V}/talks/{cid}/messages", {"text": "after"}),
        (bob, "POST", f"{V}/messages/{mid}/reactions", {"emoji": "tada"}),
    ]
    for agent, method, path, body in writes:
        await agent.problem(409, method, path, json=body)
    assert without_viewer(await alice.get_chat(chat)) == deleted
