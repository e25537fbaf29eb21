"""1:1 reuse: creating a normal talk with exactly one other agent answers the pair's active
normal talk (appending nothing); racing creations of one pair yield one talk."""

from __future__ import annotations

import asyncio

from tests.integration.api.conftest import CHATS, without_viewer


def _normal_with(agent) -> dict:
    return {"type": "normal", "participants": [{"owner_type": "agent", "owner_id": agent.id}]}


async def test_the_pairs_active_talk_is_answered_again(talk):
    alice = talk.agent()
    bob, carol = alice.colleague(), alice.colleague()
    first = await alice.ok("POST", CHATS, json=_normal_with(bob))
    before = await talk.event_count()
    again = await alice.ok("POST", CHATS, json=_normal_with(bob))
    from_bob = await bob.ok("POST", CHATS, json=_normal_with(alice))
    short = await bob.ok("POST", "/v1.0/talks", json={"type": "normal", "participant_ids": [alice.id]})
    assert again == first and from_bob == first and short["id"] == first["id"]
    assert await talk.event_count() == before
    assert without_viewer(await bob.get_chat(first)) == first
    # another pair, a group, or a normal talk alone are new talks
    assert (await alice.ok("POST", CHATS, json=_normal_with(carol)))["id"] != first["id"]
    assert (await alice.create_talk("group", members=(bob,)))["id"] != first["id"]
    assert (await alice.create_talk("normal"))["id"] != first["id"]


async def test_a_closed_or_deleted_pair_talk_is_not_reused(talk):
    alice = talk.agent()
    bob = alice.colleague()
    first = await alice.ok("POST", CHATS, json=_normal_with(bob))
    await alice.ok("POST", f"{CHATS}/{first['id']}/close")
    second = await bob.ok("POST", CHATS, json=_normal_with(alice))
    assert second["id"] != first["id"] and second["status"] == "active"
    await bob.ok("DELETE", f"{CHATS}/{second['id']}")
    third = await alice.ok("POST", CHATS, json=_normal_with(bob))
    assert third["id"] not in (first["id"], second["id"])
    assert (await alice.ok("POST", CHATS, json=_normal_with(bob)))["id"] == third["id"]


async def test_eight_racing_creations_of_one_pair_yield_one_talk(talk):
    alice = talk.agent()
    bob = alice.colleague()
    creators = [alice, bob] * 4
    answers = await asyncio.gather(*(
        agent.ok("POST", CHATS, json=_normal_with(alice if agent is bob else bob))
        for agent in creators))
    assert len({a["id"] for a in answers}) == 1
    listed = (await alice.ok("GET", CHATS))["result"]
    assert [c["id"] for c in listed] == [answers[0]["id"]]
    async with talk.db.statement("test_pair_creations") as conn:
        cur = await conn.execute(
            "SELECT count(*) AS n FROM events WHERE type = 'ChatCreated'"
            " AND data->>'customer_id' = %s", (str(alice.customer_id),))
        assert (await cur.fetchone())["n"] == 1
