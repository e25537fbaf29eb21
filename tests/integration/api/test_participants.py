"""Participants: add, remove (hard delete), re-add, and the system messages joins and leaves
post."""

from __future__ import annotations

from uuid import uuid4

import pytest

from tests.integration.api.conftest import CHATS, PARTICIPANT_FIELDS, V, is_timestamp


async def test_add_answers_the_participant(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk()
    joined = await alice.add(chat, bob)
    assert set(joined) == PARTICIPANT_FIELDS
    assert joined["customer_id"] == str(alice.customer_id)
    assert (joined["owner_type"], joined["owner_id"], joined["chat_id"]) == ("agent", bob.id, chat["id"])
    assert is_timestamp(joined["tm_joined"])
    assert joined in await bob.participants(chat)


@pytest.fixture(scope="module")
async def lone_talk(module_talk):
    """A talk of one that the bad additions below must leave alone."""
    alice = module_talk.agent()
    return alice, await alice.create_talk()


@pytest.mark.parametrize("body", [
    pytest.param({"owner_type": "user", "owner_id": str(uuid4())}, id="not-agent"),
    pytest.param({"owner_type": "system", "owner_id": str(uuid4())}, id="system"),
    pytest.param({"owner_type": "agent", "owner_id": "bob"}, id="owner-id-not-uuid"),
    pytest.param({"owner_type": "agent"}, id="no-owner-id"),
])
async def test_add_rejects_bad_input(lone_talk, body):
    alice, chat = lone_talk
    await alice.problem(400, "POST", f"{CHATS}/{chat['id']}/participants", json=body)
    assert len(await alice.participants(chat)) == 1


async def test_the_same_agent_twice_conflicts(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk(members=(bob,))
    for agent in (alice, bob):
        await alice.problem(409, "POST", f"{CHATS}/{chat['id']}/participants",
                            json={"owner_type": "agent", "owner_id": agent.id})
    await bob.problem(409, "POST", f"{V}/talks/{chat['id']}/participants", json={"agent_id": alice.id})
    assert len(await alice.participants(chat)) == 2


async def test_remove_answers_the_removed_participant_and_hard_deletes_it(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk(members=(bob,))
    bob_p = await alice.participant_of(chat, bob)
    removed = await alice.remove(chat, bob_p)
    assert removed == bob_p
    assert bob.id not in {p["owner_id"] for p in await alice.participants(chat)}
    # Gone for good: removing it again is a 404, and bob no longer reads the talk.
    await alice.problem(404, "DELETE", f"{CHATS}/{chat['id']}/participants/{bob_p['id']}")
    await bob.problem(403, "GET", f"{CHATS}/{chat['id']}")


async def test_remove_a_participant_of_another_talk_is_404(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk(members=(bob,))
    other = await alice.create_talk(members=(bob,))
    bob_in_other = await alice.participant_of(other, bob)
    await alice.problem(404, "DELETE", f"{CHATS}/{chat['id']}/participants/{bob_in_other['id']}")
    await alice.problem(404, "DELETE", f"{CHATS}/{chat['id']}/participants/{uuid4()}")
    await alice.problem(404, "DELETE", f"{CHATS}/{chat['id']}/participants/not-a-uuid")
    await alice.problem(404, "DELETE", f"{V}/talks/{chat['id']}/participants/{bob_in_other['id']}")
    assert len(await alice.participants(chat)) == 2


async def test_readding_makes_a_new_participant(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk(members=(bob,))
    first = await alice.participant_of(chat, bob)
    await alice.remove(chat, first)
    again = await alice.add(chat, bob)
    assert again["id"] != first["id"]
    assert again["tm_joined"] > first["tm_joined"]
    assert await alice.participant_of(chat, bob) == again


async def test_leaving_yourself(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk(members=(bob,))
    me = await bob.participant_of(chat, bob)
    assert await bob.remove(chat, me) == me
    await bob.problem(403, "GET", f"{CHATS}/{chat['id']}/participants")
    assert (await alice.get_chat(chat))["member_count"] == 1


async def test_joins_and_leaves_post_system_messages(talk):
    alice = talk.agent()
    bob, carol = alice.colleague(), alice.colleague()
    chat = await alice.create_talk(members=(bob,))
    joined = await alice.add(chat, carol)
    left = await carol.remove(chat, joined)
    assert left == joined
    messages = await alice.messages(chat)
    system = [m for m in messages if m["type"] == "system"]
    assert len(system) == len(messages) == 3  # alice and bob joined; carol joined; left
    assert all(m["owner_type"] == "system" for m in system)
    # Newest first; the creation posts one message for all its members.
    assert [m["owner_id"] for m in system] == [carol.id, carol.id, alice.id]
    assert "left" in system[0]["text"] and "joined" in system[1]["text"]
    assert system[2]["text"] == f"{alice.id} and 1 other joined the talk"
    assert all(m["chat_id"] == chat["id"] and m["parent_id"] == "" for m in system)


async def test_short_forms(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.ok("POST", f"{V}/talks", json={"name": "short", "participant_ids": [bob.id]})
    assert (chat["type"], chat["name"], chat["member_count"]) == ("group", "short", 2)
    carol = alice.colleague()
    joined = await alice.ok("POST", f"{V}/talks/{chat['id']}/participants", json={"agent_id": carol.id})
    assert set(joined) == PARTICIPANT_FIELDS and joined["owner_id"] == carol.id
    removed = await alice.ok("DELETE", f"{V}/talks/{chat['id']}/participants/{joined['id']}")
    assert removed == joined
    await alice.problem(400, "POST", f"{V}/talks/{chat['id']}/participants", json={"agent_id": "x"})
