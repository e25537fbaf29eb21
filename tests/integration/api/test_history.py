"""``GET talk_messages/{id}/history``: every version of a message's text, oldest first, for
the participants of its talk."""

from __future__ import annotations

from uuid import uuid4

from tests.integration.api.conftest import MESSAGES


def history_path(message: dict | str) -> str:
    message_id = message["id"] if isinstance(message, dict) else message
    return f"{MESSAGES}/{message_id}/history"


async def test_every_version_oldest_first(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk(members=(bob,))
    message = await alice.post(chat, "frist")
    assert await bob.ok("GET", history_path(message)) == {
        "result": [{"text": "frist", "tm_update": message["tm_create"]}]}

    second = await alice.ok("PUT", f"{MESSAGES}/{message['id']}", json={"text": "first"})
    await bob.react(message, "eyes")  # not a version of the text
    third = await alice.ok("PUT", f"{MESSAGES}/{message['id']}", json={"text": "first!"})
    history = await bob.ok("GET", history_path(message))
    assert history == {"result": [
        {"text": "frist", "tm_update": message["tm_create"]},
        {"text": "first", "tm_update": second["tm_update"]},
        {"text": "first!", "tm_update": third["tm_update"]},
    ]}
    assert history["result"][-1]["text"] == (await bob.get_message(message))["text"]


async def test_a_deleted_message_shows_no_versions(talk):
    alice = talk.agent()
    chat = await alice.create_talk()
    message = await alice.post(chat, "oops, a password")
    await alice.ok("PUT", f"{MESSAGES}/{message['id']}", json={"text": "oops"})
    await alice.ok("DELETE", f"{MESSAGES}/{message['id']}")
    assert await alice.ok("GET", history_path(message)) == {"result": []}


async def test_participants_only(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk(members=(bob,))
    message = await alice.post(chat, "hello")
    outsider = alice.colleague()
    await outsider.problem(403, "GET", history_path(message))
    await talk.agent().problem(404, "GET", history_path(message))  # another customer
    await alice.problem(404, "GET", history_path(str(uuid4())))
    await alice.problem(404, "GET", history_path("not-a-uuid"))
    await alice.remove(chat, await alice.participant_of(chat, bob))
    await bob.problem(403, "GET", history_path(message))
