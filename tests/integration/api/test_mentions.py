"""Mentions: ``<@agent-uuid>`` of a participant in a message's text; an edit re-evaluates
them; anyone else's token is plain text."""

from __future__ import annotations

from uuid import uuid4

from tests.integration.api.conftest import MESSAGES


async def test_mentions_of_participants_only(talk):
    alice = talk.agent()
    bob, carol, outsider = alice.colleague(), alice.colleague(), alice.colleague()
    chat = await alice.create_talk("group", members=(bob, carol))
    text = (f"<@{bob.id}> and <@{carol.id.upper()}>, again <@{bob.id}>; not <@{outsider.id}>,"
            f" <@{uuid4()}> or <@not-a-uuid>")
    message = await alice.post(chat, text)
    assert message["mentions"] == [bob.id, carol.id]
    assert message["text"] == text
    assert (await bob.get_message(message))["mentions"] == [bob.id, carol.id]
    assert (await alice.post(chat, "no one"))["mentions"] == []


async def test_an_edit_re_evaluates_mentions_and_a_delete_clears_them(talk):
    alice = talk.agent()
    bob, carol = alice.colleague(), alice.colleague()
    chat = await alice.create_talk("group", members=(bob,))
    message = await alice.post(chat, f"hi <@{bob.id}>")
    edited = await alice.ok("PUT", f"{MESSAGES}/{message['id']}", json={"text": f"hi <@{carol.id}>"})
    assert edited["mentions"] == []  # carol is not in the talk
    await alice.add(chat, carol)
    edited = await alice.ok("PUT", f"{MESSAGES}/{message['id']}",
                            json={"text": f"hi <@{carol.id}> <@{alice.id}>"})
    assert edited["mentions"] == [carol.id, alice.id]
    assert (await carol.get_message(message))["mentions"] == [carol.id, alice.id]
    deleted = await alice.ok("DELETE", f"{MESSAGES}/{message['id']}")
    assert deleted["mentions"] == [] and (await bob.get_message(message))["mentions"] == []
