"""Read state: the read marker (``POST talk_chats/{id}/read``, and posting), never moving
back; unread and mention counts exact after a scripted sequence by three agents; the marker
on participants; ``last_message``; marking read never conflicting with posting."""

from __future__ import annotations

import asyncio
from uuid import uuid4

from tests.integration.api.conftest import CHATS, MESSAGES, VIEWER_FIELDS


async def counts(agent, chat) -> tuple[int, int]:
    seen = await agent.get_chat(chat)
    return seen["unread_count"], seen["mention_count"]


async def read(agent, chat, message=None) -> dict:
    body = {} if message is None else {"message_id": message["id"]}
    return await agent.ok("POST", f"{CHATS}/{chat['id']}/read", json=body)


async def test_unread_and_mention_counts_after_a_scripted_sequence(talk):
    alice = talk.agent()
    bob, carol = alice.colleague(), alice.colleague()
    chat = await alice.create_talk("group", members=(bob, carol))
    for agent in (alice, bob, carol):
        seen = await agent.get_chat(chat)
        assert VIEWER_FIELDS <= set(seen)
        assert (seen["unread_count"], seen["mention_count"]) == (0, 0)  # the join is not unread

    m1 = await alice.post(chat, "hello")
    assert [await counts(a, chat) for a in (alice, bob, carol)] == [(0, 0), (1, 0), (1, 0)]
    m2 = await bob.post(chat, f"<@{carol.id}> look")
    assert [await counts(a, chat) for a in (alice, bob, carol)] == [(1, 0), (0, 0), (2, 1)]
    m3 = await carol.post(chat, f"<@{alice.id}> <@{bob.id}>")
    assert [await counts(a, chat) for a in (alice, bob, carol)] == [(2, 1), (1, 1), (0, 0)]
    await read(alice, chat, m2)
    assert await counts(alice, chat) == (1, 1)
    await carol.ok("PUT", f"{MESSAGES}/{m3['id']}", json={"text": f"<@{alice.id}> only"})
    assert [await counts(a, chat) for a in (alice, bob)] == [(1, 1), (1, 0)]
    bob_marker = await read(bob, chat)  # the newest: m3
    assert bob_marker["last_read_message_id"] == m3["id"] and bob_marker["tm_read"]
    assert await counts(bob, chat) == (0, 0)
    m4 = await alice.post(chat, "more")
    assert [await counts(a, chat) for a in (alice, bob, carol)] == [(0, 0), (1, 0), (1, 0)]
    await carol.ok("DELETE", f"{MESSAGES}/{m3['id']}")
    assert [await counts(a, chat) for a in (alice, bob, carol)] == [(0, 0), (1, 0), (1, 0)]
    await alice.ok("DELETE", f"{MESSAGES}/{m4['id']}")
    assert [await counts(a, chat) for a in (alice, bob, carol)] == [(0, 0), (0, 0), (0, 0)]
    m5 = await bob.post(chat, f"<@{alice.id}> ping")
    before = await talk.event_count()
    back = await read(alice, chat, m1)  # behind her marker (m4): nothing moves
    assert await talk.event_count() == before
    assert back["last_read_message_id"] == m4["id"]
    assert [await counts(a, chat) for a in (alice, bob, carol)] == [(1, 1), (0, 0), (1, 0)]

    seen = await alice.get_chat(chat)
    assert seen["last_message"]["id"] == m5["id"] and seen["tm_last_message"] == m5["tm_create"]
    markers = {p["owner_id"]: p for p in await alice.participants(chat)}
    assert markers[alice.id]["last_read_message_id"] == m4["id"]
    assert markers[bob.id]["last_read_message_id"] == m5["id"]
    assert markers[bob.id]["tm_read"] == m5["tm_create"]  # posting marked it read
    assert markers[carol.id]["last_read_message_id"] == m3["id"]
    listed = (await alice.ok("GET", CHATS))["result"]
    assert [(c["unread_count"], c["mention_count"]) for c in listed] == [(1, 1)]


async def test_the_marker_never_moves_back(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk("group", members=(bob,))
    first, second = await alice.post(chat, "one"), await alice.post(chat, "two")
    participant = await bob.participant_of(chat, bob)
    assert (participant["last_read_message_id"], participant["tm_read"]) == ("", "")
    moved = await read(bob, chat, second)
    assert moved["last_read_message_id"] == second["id"] and moved["id"] == participant["id"]
    before = await talk.event_count()
    for _ in range(2):
        kept = await read(bob, chat, first)
        assert (kept["last_read_message_id"], kept["tm_read"]) == (second["id"], moved["tm_read"])
        assert await read(bob, chat, second) == kept
    assert await talk.event_count() == before
    assert (await bob.participant_of(chat, bob))["last_read_message_id"] == second["id"]
    assert await counts(bob, chat) == (0, 0)


async def test_read_rules(talk):
    alice = talk.agent()
    bob, outsider = alice.colleague(), alice.colleague()
    chat = await alice.create_talk("group", members=(bob,))
    other = await alice.create_talk("group")
    elsewhere = await alice.post(other, "elsewhere")
    await alice.post(chat, "here")
    await alice.get_chat(chat)
    await outsider.problem(403, "POST", f"{CHATS}/{chat['id']}/read", json={})
    await talk.agent().problem(404, "POST", f"{CHATS}/{chat['id']}/read", json={})
    await bob.problem(404, "POST", f"{CHATS}/{chat['id']}/read",
                      json={"message_id": elsewhere["id"]})
    await bob.problem(400, "POST", f"{CHATS}/{chat['id']}/read", json={"message_id": "nope"})
    await bob.problem(400, "POST", f"{CHATS}/{chat['id']}/read", json=[])
    await bob.problem(404, "POST", f"{CHATS}/{chat['id']}/read",
                      json={"message_id": str(uuid4())})


async def test_a_new_participant_starts_with_nothing_unread(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk("group")
    for i in range(3):
        await alice.post(chat, f"before {i}")
    await alice.add(chat, bob)
    assert await counts(bob, chat) == (0, 0)
    await alice.post(chat, "after")
    assert await counts(bob, chat) == (1, 0)


async def test_marking_read_never_conflicts_with_posting(talk):
    alice = talk.agent()
    agents = [alice] + [alice.colleague() for _ in range(49)]
    chat = await alice.create_talk("group", members=tuple(agents[1:]))
    await alice.post(chat, "start")
    await alice.get_chat(chat)  # projected: "the newest" is known
    readers, posters = agents[:25], agents[25:]

    async def reader(agent):
        return [await agent.request("POST", f"{CHATS}/{chat['id']}/read", json={})
                for _ in range(3)]

    async def poster(agent):
        return [await agent.request("POST", MESSAGES, json={
            "chat_id": chat["id"], "type": "normal", "text": f"from {agent.id}"})
            for _ in range(3)]

    answers = await asyncio.gather(*(reader(a) for a in readers), *(poster(a) for a in posters))
    statuses = [resp.status for batch in answers for resp in batch]
    assert statuses == [200] * len(statuses), sorted(set(statuses))
