"""``GET talk_messages`` without ``chat_id``: the messages of every talk the caller is in (not
deleted), newest first, paginated without repeats or gaps."""

from __future__ import annotations

from tests.integration.api.conftest import MESSAGES


async def feed(agent, **params) -> list[dict]:
    found: list[dict] = []
    token = ""
    while True:
        page = await agent.ok("GET", MESSAGES, params={"page_token": token, **params})
        found += page["result"]
        token = page["next_page_token"]
        if not token:
            return found


async def test_every_talk_of_the_caller_newest_first(talk):
    alice = talk.agent()
    bob = alice.colleague()
    first = await alice.create_talk(members=(bob,))
    second = await bob.create_talk(members=(alice,))
    quiet = await alice.create_talk()
    not_mine = await bob.create_talk()
    await bob.post(not_mine, "bob alone")
    stranger = talk.agent()
    await stranger.post(await stranger.create_talk(), "elsewhere")
    posted = [await alice.post(first, "one"), await bob.post(second, "two"),
              await alice.post(first, "three"), await bob.post(second, "four", parent_id=None)]

    everything = []
    for chat in (first, second, quiet):
        everything += await alice.messages(chat)  # the system messages of the joins too
    expected = sorted(everything, key=lambda m: (m["tm_create"], m["id"]), reverse=True)
    listed = await feed(alice)
    assert listed == expected
    assert [m["id"] for m in listed[:4]] == [m["id"] for m in reversed(posted)]
    for size in (1, 2, 5):
        assert await feed(alice, page_size=size) == expected
    assert {m["chat_id"] for m in listed} == {first["id"], second["id"], quiet["id"]}


async def test_deleted_talks_and_left_talks_are_not_listed(talk):
    alice = talk.agent()
    bob = alice.colleague()
    kept = await alice.create_talk()
    deleted = await alice.create_talk()
    left = await bob.create_talk(members=(alice,))
    await alice.post(kept, "kept")
    await alice.post(deleted, "deleted")
    await bob.post(left, "left behind")
    await alice.ok("DELETE", f"/v1.0/service_agents/talk_chats/{deleted['id']}")
    await bob.remove(left, await bob.participant_of(left, alice))
    assert {m["chat_id"] for m in await feed(alice)} == {kept["id"]}


async def test_an_agent_in_no_talk_sees_nothing(talk):
    assert await talk.agent().ok("GET", MESSAGES) == {"result": [], "next_page_token": ""}


async def test_a_thread_without_its_talk(talk):
    alice = talk.agent()
    chat = await alice.create_talk()
    root = await alice.post(chat, "root")
    replies = [await alice.post(chat, f"reply {i}", parent_id=root["id"]) for i in range(3)]
    assert await feed(alice, parent_id=root["id"]) == [
        await alice.get_message(r) for r in reversed(replies)]
    outsider = alice.colleague()
    await outsider.problem(403, "GET", MESSAGES, params={"parent_id": root["id"]})
    await talk.agent().problem(404, "GET", MESSAGES, params={"parent_id": root["id"]})
