"""Thread summaries: a message carries ``reply_count`` (its direct replies, as many as its
thread list shows, tombstones included) and ``tm_last_reply`` (the newest one's
``tm_create``, ``""`` without replies), in every answer that shows it."""

from __future__ import annotations

from tests.integration.api.conftest import MESSAGES


async def test_replies_are_counted_on_their_parent(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk(members=(bob,))
    root = await alice.post(chat, "root")
    assert (root["reply_count"], root["tm_last_reply"]) == (0, "")
    first = await bob.post(chat, "first", parent_id=root["id"])
    nested = await alice.post(chat, "nested", parent_id=first["id"])
    second = await bob.post(chat, "second", parent_id=root["id"])

    got = await alice.get_message(root)
    assert (got["reply_count"], got["tm_last_reply"]) == (2, second["tm_create"])
    assert got["tm_update"] == root["tm_update"]  # a reply is not a change of its parent
    got_first = await alice.get_message(first)
    assert (got_first["reply_count"], got_first["tm_last_reply"]) == (1, nested["tm_create"])
    assert (await alice.get_message(second))["reply_count"] == 0
    listed = {m["id"]: m for m in await alice.messages(chat)}
    assert listed[root["id"]] == got and listed[first["id"]] == got_first
    assert len(await alice.messages(chat, parent_id=root["id"])) == got["reply_count"]


async def test_a_deleted_reply_stays_counted_and_a_deleted_parent_keeps_its_count(talk):
    alice = talk.agent()
    chat = await alice.create_talk()
    root = await alice.post(chat, "root")
    reply = await alice.post(chat, "reply", parent_id=root["id"])
    await alice.ok("DELETE", f"{MESSAGES}/{reply['id']}")
    await alice.get_message(root)  # projected: the command below sees the reply
    deleted_root = await alice.ok("DELETE", f"{MESSAGES}/{root['id']}")
    assert (deleted_root["reply_count"], deleted_root["tm_last_reply"]) == (1, reply["tm_create"])
    late = await alice.post(chat, "late", parent_id=root["id"])
    got = await alice.get_message(root)
    assert (got["reply_count"], got["tm_last_reply"]) == (2, late["tm_create"])
    assert len(await alice.messages(chat, parent_id=root["id"])) == 2


async def test_commands_on_a_parent_answer_its_thread_summary(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk(members=(bob,))
    root = await alice.post(chat, "root")
    reply = await bob.post(chat, "reply", parent_id=root["id"])
    await alice.get_message(root)  # the reply is projected: commands see it from here on
    summary = {"reply_count": 1, "tm_last_reply": reply["tm_create"]}

    edited = await alice.ok("PUT", f"{MESSAGES}/{root['id']}", json={"text": "root, edited"})
    assert edited == await alice.get_message(root)
    assert {k: edited[k] for k in summary} == summary
    reacted = await bob.react(root, "eyes")
    assert {k: reacted[k] for k in summary} == summary
    assert reacted == await bob.get_message(root)
    unreacted = await bob.ok("DELETE", f"{MESSAGES}/{root['id']}/reactions",
                             params={"emoji": "eyes"})
    assert {k: unreacted[k] for k in summary} == summary
