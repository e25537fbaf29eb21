"""``tm_update`` as the product docs show it: equal to ``tm_create`` when a talk or a message
is created, and moved by every change to it (talk: rename, join, leave, close, reopen,
delete; message: edit, delete, reaction added or removed), in command answers and reads
alike; a post does not change its talk, a reply does not change its parent."""

from __future__ import annotations

from tests.integration.api.conftest import CHATS, MESSAGES, is_timestamp, without_viewer


async def test_a_talks_tm_update(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk(members=(bob,))
    assert is_timestamp(chat["tm_update"]) and chat["tm_update"] == chat["tm_create"]
    assert without_viewer(await alice.get_chat(chat)) == chat
    path = f"{CHATS}/{chat['id']}"
    seen = [chat["tm_update"]]

    async def moved() -> dict:
        now = without_viewer(await alice.get_chat(chat))
        assert now["tm_update"] > seen[-1], (now["tm_update"], seen)
        seen.append(now["tm_update"])
        return now

    await alice.post(chat, "a post is not a change of the talk")
    assert (await alice.get_chat(chat))["tm_update"] == seen[-1]

    renamed = await alice.ok("PUT", path, json={"name": "renamed"})
    assert (await moved()) == renamed
    carol = alice.colleague()
    joined = await alice.add(chat, carol)
    assert (await moved())["tm_update"] == joined["tm_joined"]
    await alice.remove(chat, joined)
    await moved()
    closed = await alice.ok("POST", f"{path}/close")
    assert (await moved())["tm_update"] == closed["tm_update"]
    reopened = await alice.ok("POST", f"{path}/reopen")
    assert (await moved())["tm_update"] == reopened["tm_update"]
    deleted = await alice.ok("DELETE", path)
    assert deleted["tm_update"] == deleted["tm_delete"]
    assert (await moved())["tm_update"] == deleted["tm_delete"]


async def test_a_messages_tm_update(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk(members=(bob,))
    message = await alice.post(chat, "hello")
    assert is_timestamp(message["tm_update"]) and message["tm_update"] == message["tm_create"]
    assert await bob.get_message(message) == message
    path = f"{MESSAGES}/{message['id']}"
    seen = [message["tm_update"]]

    async def moved(answer: dict) -> None:
        got = await bob.get_message(message)
        assert got == answer
        assert got["tm_update"] > seen[-1], (got["tm_update"], seen)
        seen.append(got["tm_update"])

    await bob.post(chat, "a reply is not a change of its parent", parent_id=message["id"])
    assert (await bob.get_message(message))["tm_update"] == seen[-1]

    await moved(await alice.ok("PUT", path, json={"text": "hello!"}))
    added = await bob.react(message, "eyes")
    await moved(added)
    assert added["tm_update"] == added["metadata"]["reactions"][0]["tm_create"]
    await moved(await bob.ok("DELETE", f"{path}/reactions", params={"emoji": "eyes"}))
    deleted = await alice.ok("DELETE", path)
    assert deleted["tm_update"] == deleted["tm_delete"]
    await moved(deleted)


async def test_system_messages_and_creation_joins(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk(members=(bob,))
    for message in await alice.messages(chat):  # the joins' system messages
        assert message["tm_update"] == message["tm_create"] == chat["tm_create"]
    participants = await alice.participants(chat)
    assert {p["tm_joined"] for p in participants} == {chat["tm_update"]}
