"""Racing commands: a post racing with the sender's removal lands before it or is refused;
two agents adding one participant: one wins, one gets 409; concurrent reactions and posts are
all kept.

The racers call two API instances on one database, as two command-API processes would:
within one process, commands on one stream take turns (command_api/stream_locks.py), so only
racers in different processes exercise the store's optimistic version checks."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import pytest
from aiohttp.test_utils import TestClient, TestServer

from events import catalogue as ev
from events.postgres_store import row_to_event
from services.up import build_up_app
from tests.integration.api.conftest import CHATS, MESSAGES, TalkClient, api_settings

ROUNDS = 12


@pytest.fixture(scope="module")
async def other_talk(module_talk: TalkClient, settings) -> AsyncIterator[TalkClient]:
    """A second API instance on the same database (the projector is shared)."""
    client = TestClient(TestServer(build_up_app(api_settings(settings))))
    await client.start_server()
    try:
        yield TalkClient(client, module_talk.db)
    finally:
        await client.close()


def _synced(talk: TalkClient, other: TalkClient) -> None:
    """Reads through ``talk`` wait for the writes made through ``other`` too."""
    talk.position = other.position = max(talk.position, other.position)


async def _history_of(talk, chat_ids: set[str]) -> list[ev.Event]:
    """The talks' events in the store's one global order ``(tx_id, position)``, the order
    the projector and every other reader follow."""
    async with talk.db.statement("test_history_of_talks") as conn:
        cur = await conn.execute(
            "SELECT position, tx_id::text::bigint AS tx_id, event_id, stream_id, version, type,"
            " schema_version, data, metadata, recorded_at FROM events"
            " WHERE data->>'chat_id' = ANY(%s) ORDER BY tx_id, position",
            (list(chat_ids),),
        )
        return [row_to_event(r).decode() for r in await cur.fetchall()]


def _posts_by_non_members(history: list[ev.Event]) -> list[ev.MessagePosted]:
    members: dict[UUID, set[UUID]] = defaultdict(set)
    bad = []
    for event in history:
        if isinstance(event, ev.ParticipantJoined):
            members[event.chat_id].add(event.owner_id)
        elif isinstance(event, ev.ParticipantLeft):
            members[event.chat_id].discard(event.owner_id)
        elif (isinstance(event, ev.MessagePosted) and event.owner_type == "agent"
              and event.owner_id not in members[event.chat_id]):
            bad.append(event)
    return bad


async def test_a_post_racing_with_the_senders_removal(talk, other_talk):
    alice = talk.agent()
    bob = alice.colleague()
    bob_elsewhere = bob.via(other_talk)
    outcomes: dict[int, int] = defaultdict(int)
    chats: set[str] = set()
    accepted: set[str] = set()
    for _ in range(ROUNDS):
        chat = await alice.create_talk()
        chats.add(chat["id"])
        bob_p = await alice.add(chat, bob)
        posts = [poster.request("POST", MESSAGES, json={"chat_id": chat["id"], "text": "racing"})
                 for poster in (bob, bob_elsewhere, bob, bob_elsewhere)]
        removal = alice.request("DELETE", f"{CHATS}/{chat['id']}/participants/{bob_p['id']}")
        *post_resps, removal_resp = await asyncio.gather(*posts, removal)
        assert removal_resp.status == 200
        for resp in post_resps:
            assert resp.status in (200, 403), await resp.text()
            outcomes[resp.status] += 1
            if resp.status == 200:
                accepted.add((await resp.json())["id"])
    _synced(talk, other_talk)

    history = await _history_of(talk, chats)
    assert _posts_by_non_members(history) == []
    posted = {str(e.message_id) for e in history
              if isinstance(e, ev.MessagePosted) and e.owner_type == "agent"}
    assert posted == accepted  # every 200 was kept, every 403 left nothing behind
    # The read side agrees: bob's accepted posts are in the talks, nothing else of his.
    seen = set()
    for chat_id in chats:
        seen |= {m["id"] for m in await alice.messages(chat_id) if m["owner_type"] == "agent"}
    assert seen == accepted
    assert sum(outcomes.values()) == 4 * ROUNDS


async def test_two_agents_adding_the_same_participant(talk, other_talk):
    alice = talk.agent()
    bob = alice.colleague().via(other_talk)
    added = []
    for _ in range(ROUNDS):
        carol = alice.colleague()
        chat = await alice.create_talk(members=(bob,))
        body = {"owner_type": "agent", "owner_id": carol.id}
        path = f"{CHATS}/{chat['id']}/participants"
        a, b = await asyncio.gather(alice.request("POST", path, json=body),
                                    bob.request("POST", path, json=body))
        assert sorted((a.status, b.status)) == [200, 409]
        added.append((chat, carol))
    _synced(talk, other_talk)
    for chat, carol in added:
        participants = await alice.participants(chat)
        assert [p["owner_id"] for p in participants].count(carol.id) == 1
        assert (await alice.get_chat(chat))["member_count"] == 3
    history = await _history_of(talk, {chat["id"] for chat, _ in added})
    assert sum(isinstance(e, ev.ParticipantJoined) for e in history) == 3 * ROUNDS


async def test_the_third_member_of_a_normal_talk_races(talk, other_talk):
    alice = talk.agent()
    elsewhere = alice.via(other_talk)
    chats = []
    for _ in range(ROUNDS // 2):
        chat = await alice.create_talk("normal")
        hopefuls = [alice.colleague() for _ in range(4)]
        resps = await asyncio.gather(*(
            adder.request("POST", f"{CHATS}/{chat['id']}/participants",
                          json={"owner_type": "agent", "owner_id": h.id})
            for adder, h in zip((alice, elsewhere, alice, elsewhere), hopefuls, strict=True)))
        assert sorted(r.status for r in resps) == [200, 409, 409, 409]
        chats.append(chat)
    _synced(talk, other_talk)
    for chat in chats:
        assert (await alice.get_chat(chat))["member_count"] == 2


async def test_twenty_concurrent_reactions_are_all_kept(talk, other_talk):
    alice = talk.agent()
    agents = [alice] + [alice.colleague() for _ in range(4)]
    chat = await alice.create_talk(members=tuple(agents[1:]))
    message = await alice.post(chat, "popular")
    emoji = ("thumbsup", "heart", "tada", "eyes")
    # Half of each agent's reactions through each API instance.
    resps = await asyncio.gather(*(
        (agent if i % 2 else agent.via(other_talk)).request(
            "POST", f"{MESSAGES}/{message['id']}/reactions", json={"emoji": e})
        for agent in agents for i, e in enumerate(emoji)))
    assert [r.status for r in resps] == [200] * 20, [await r.text() for r in resps if r.status != 200]
    _synced(talk, other_talk)
    reactions = (await alice.get_message(message))["metadata"]["reactions"]
    assert sorted((r["owner_id"], r["emoji"]) for r in reactions) == sorted(
        (a.id, e) for a in agents for e in emoji)
    history = await _history_of(talk, {chat["id"]})
    assert sum(isinstance(e, ev.ReactionAdded) for e in history) == 20


async def test_concurrent_posts_are_all_kept(talk, other_talk):
    alice = talk.agent()
    bob = alice.colleague().via(other_talk)
    chat = await alice.create_talk(members=(bob,))
    resps = await asyncio.gather(*(
        agent.request("POST", MESSAGES, json={"chat_id": chat["id"], "text": f"{agent.id} {i}"})
        for i in range(10) for agent in (alice, bob)))
    assert [r.status for r in resps] == [200] * 20
    _synced(talk, other_talk)
    texts = {m["text"] for m in await alice.messages(chat) if m["type"] == "normal"}
    assert texts == {f"{agent.id} {i}" for i in range(10) for agent in (alice, bob)}


async def test_a_stale_cache_in_one_instance_never_refuses_a_valid_command(talk, other_talk):
    """Each command API caches the streams it decides on; a change made through another
    instance must make it decide again, with or without an Idempotency-Key."""
    alice = talk.agent()
    bob, carol = alice.colleague(), alice.colleague()
    chat = await alice.create_talk(members=(bob,))
    await alice.post(chat, "warm the cache of the first instance")
    # Through the second instance: the talk's stream moves on.
    await alice.via(other_talk).add(chat, carol)
    _synced(talk, other_talk)
    for headers in ({"Idempotency-Key": f"stale-{uuid4()}"}, {}):
        posted = await alice.ok("POST", MESSAGES, json={"chat_id": chat["id"], "text": "still fine"},
                                headers=headers)
        assert posted["text"] == "still fine"
    # And a refusal decided on stale state is checked against fresh state: carol, added
    # through the other instance, may post through this one.
    assert (await carol.post(chat, "hi from carol"))["owner_id"] == str(carol.agent_id)
