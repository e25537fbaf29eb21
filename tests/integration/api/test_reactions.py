"""Reactions: several agents and several emoji, one (agent, emoji) pair once, removal by body
or query, none on a deleted message."""

from __future__ import annotations

from uuid import uuid4

import pytest

from tests.integration.api.conftest import MESSAGES, REACTION_FIELDS, V, is_timestamp


async def _setup(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk(members=(bob,))
    message = await alice.post(chat, "react to me")
    return alice, bob, chat, message


def _pairs(message: dict) -> list[tuple[str, str]]:
    return [(r["owner_id"], r["emoji"]) for r in message["metadata"]["reactions"]]


async def test_several_agents_and_several_emoji(talk):
    alice, bob, _, message = await _setup(talk)
    first = await alice.react(message, "thumbsup")
    reactions = first["metadata"]["reactions"]
    assert len(reactions) == 1 and set(reactions[0]) == REACTION_FIELDS
    assert (reactions[0]["emoji"], reactions[0]["owner_type"], reactions[0]["owner_id"]) == (
        "thumbsup", "agent", alice.id)
    assert is_timestamp(reactions[0]["tm_create"])
    await alice.react(message, "👍")
    await bob.react(message, "thumbsup")
    last = await bob.react(message, "👨‍👩‍👧")
    expected = [(alice.id, "thumbsup"), (alice.id, "👍"), (bob.id, "thumbsup"), (bob.id, "👨‍👩‍👧")]
    assert _pairs(last) == expected
    assert _pairs(await alice.get_message(message)) == expected


async def test_the_same_pair_again_changes_nothing(talk):
    alice, _, _, message = await _setup(talk)
    first = await alice.react(message, "tada")
    before = await talk.event_count()
    again = await alice.request("POST", f"{MESSAGES}/{message['id']}/reactions", json={"emoji": "tada"})
    assert again.status == 200
    assert await again.json() == first
    assert await talk.event_count() == before
    assert _pairs(await alice.get_message(message)) == [(alice.id, "tada")]


async def test_remove_by_body_and_by_query(talk):
    alice, bob, _, message = await _setup(talk)
    for emoji in ("thumbsup", "heart"):
        await alice.react(message, emoji)
    await bob.react(message, "heart")
    path = f"{MESSAGES}/{message['id']}/reactions"
    after_body = await alice.ok("DELETE", path, json={"emoji": "thumbsup"})
    assert _pairs(after_body) == [(alice.id, "heart"), (bob.id, "heart")]
    after_query = await alice.ok("DELETE", path, params={"emoji": "heart"})
    assert _pairs(after_query) == [(bob.id, "heart")]  # only the caller's own
    # Removing what is not there changes nothing.
    before = await talk.event_count()
    assert _pairs(await alice.ok("DELETE", path, params={"emoji": "heart"})) == [(bob.id, "heart")]
    assert await talk.event_count() == before
    assert _pairs(await bob.get_message(message)) == [(bob.id, "heart")]


@pytest.fixture(scope="module")
async def unreacted(module_talk):
    """A message the bad reactions below must leave without a reaction."""
    return await _setup(module_talk)


@pytest.mark.parametrize("body", [
    pytest.param({"emoji": "x" * 65}, id="longer-than-64"),
    pytest.param({"emoji": ""}, id="empty"),
    pytest.param({"emoji": "hello world"}, id="not-an-emoji"),
    pytest.param({"emoji": 1}, id="not-a-string"),
    pytest.param({}, id="missing"),
])
async def test_add_rejects_bad_emoji(unreacted, body):
    alice, _, _, message = unreacted
    await alice.problem(400, "POST", f"{MESSAGES}/{message['id']}/reactions", json=body)
    await alice.problem(400, "DELETE", f"{MESSAGES}/{message['id']}/reactions", json=body)
    assert _pairs(await alice.get_message(message)) == []


async def test_no_reactions_on_a_deleted_message(talk):
    alice, bob, _, message = await _setup(talk)
    await bob.react(message, "eyes")
    await alice.ok("DELETE", f"{MESSAGES}/{message['id']}")
    path = f"{MESSAGES}/{message['id']}/reactions"
    await bob.problem(409, "POST", path, json={"emoji": "thumbsup"})
    await bob.problem(409, "DELETE", path, json={"emoji": "eyes"})
    await bob.problem(409, "POST", f"{V}/messages/{message['id']}/reactions", json={"emoji": "tada"})


async def test_unknown_message_is_404(talk):
    alice = talk.agent()
    await alice.problem(404, "POST", f"{MESSAGES}/{uuid4()}/reactions", json={"emoji": "tada"})
    await alice.problem(404, "DELETE", f"{MESSAGES}/{uuid4()}/reactions", params={"emoji": "tada"})
    await alice.problem(404, "POST", f"{MESSAGES}/nope/reactions", json={"emoji": "tada"})


async def test_short_form(talk):
    alice, _, _, message = await _setup(talk)
    reacted = await alice.ok("POST", f"{V}/messages/{message['id']}/reactions", json={"emoji": "+1"})
    assert _pairs(reacted) == [(alice.id, "+1")]
