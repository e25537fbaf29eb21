"""Each of the ten event types is published with the routing key, properties and body of
DESIGN ("Published stream"); ``data`` is what the query API answers after the event and
``audience`` the talk's agents."""

from __future__ import annotations

from uuid import uuid4

from projector.asyncapi import BODY_MODELS
from tests.integration.api.conftest import without_viewer
from tests.integration.publishing.caller import CHATS, MESSAGES, Caller
from tests.integration.publishing.expected import (
    assert_oracle_as_the_api_answers,
    assert_published_as_expected,
    expected_bodies,
)
from tests.integration.publishing.tap import Received, Tap

TEN_TYPES = {"chat_created", "chat_updated", "chat_deleted", "participant_joined",
             "participant_left", "message_created", "message_updated", "message_deleted",
             "reaction_added", "reaction_removed"}


async def latest(tap: Tap, event: str, count: int) -> Received:
    """The ``count``-th event of type ``event`` (waiting for it)."""
    return (await tap.wait_for(count, f"{count} x {event}", event=event))[count - 1]


async def test_each_event_type_is_published_as_documented(
        settings, talk_api, outbox_projector, start_publisher, open_tap):
    customer, a, b, c, d = uuid4(), uuid4(), uuid4(), uuid4(), uuid4()
    tap = await open_tap(f"{customer}.#")
    start_publisher()
    alice, bob = Caller(talk_api, customer, a), Caller(talk_api, customer, b)
    everyone = {str(a), str(b), str(c)}

    chat, pos = await alice.create_group(b, c, name="ops")
    chat_id = chat["id"]
    created = await latest(tap, "chat_created", 1)
    assert set(created.body["audience"]) == everyone
    joined = await tap.wait_for(3, "the three joins", event="participant_joined")
    participants = (await alice.read(f"{CHATS}/{chat_id}/participants", pos))["result"]
    assert sorted(j.body["data"]["id"] for j in joined) == sorted(p["id"] for p in participants)
    for j in joined:  # the creation's joins: each to its agent alone (O(N) bytes in all)
        assert j.body["data"] in participants
        assert j.body["audience"] == [j.body["data"]["owner_id"]]
    creation = await latest(tap, "message_created", 1)  # one system message for them all
    assert set(creation.body["audience"]) == everyone
    assert creation.body["data"]["text"] == f"{a} and 2 others joined the talk"

    _, pos = await alice.command("PUT", f"{CHATS}/{chat_id}", {"name": "ops-2"})
    updated = await latest(tap, "chat_updated", 1)
    assert updated.body["data"] == without_viewer(await alice.read(f"{CHATS}/{chat_id}", pos))
    assert updated.body["data"]["name"] == "ops-2"

    media = {"type": "image/png", "url": "https://example.com/a.png", "name": "a.png"}
    message, pos = await alice.post(chat_id, "hello", medias=[media])
    path = f"{MESSAGES}/{message['id']}"
    posted = await latest(tap, "message_created", 2)  # after the creation's message
    assert posted.body["data"] == await alice.read(path, pos) == message

    _, pos = await alice.command("PUT", path, {"text": "hello, all"})
    edited = await latest(tap, "message_updated", 1)
    assert edited.body["data"] == await alice.read(path, pos)
    assert edited.body["data"]["text"] == "hello, all"

    _, pos = await bob.command("POST", f"{path}/reactions", {"emoji": "👍"})
    reacted = await latest(tap, "reaction_added", 1)
    assert reacted.body["data"] == await alice.read(path, pos)
    assert [r["emoji"] for r in reacted.body["data"]["metadata"]["reactions"]] == ["👍"]

    _, pos = await bob.command("DELETE", f"{path}/reactions?emoji=👍")
    unreacted = await latest(tap, "reaction_removed", 1)
    assert unreacted.body["data"] == await alice.read(path, pos)
    assert unreacted.body["data"]["metadata"]["reactions"] == []

    added, pos = await alice.command("POST", f"{CHATS}/{chat_id}/participants",
                                     {"owner_type": "agent", "owner_id": str(d)})
    joined_d = await latest(tap, "participant_joined", 4)
    participants = (await alice.read(f"{CHATS}/{chat_id}/participants", pos))["result"]
    assert joined_d.body["data"] == added
    assert joined_d.body["data"] in participants
    assert set(joined_d.body["audience"]) == everyone | {str(d)}

    carol = next(p for p in participants if p["owner_id"] == str(c))
    removed, pos = await alice.command("DELETE", f"{CHATS}/{chat_id}/participants/{carol['id']}")
    left = await latest(tap, "participant_left", 1)
    assert left.body["data"] == removed == carol  # the query API no longer shows it
    assert set(left.body["audience"]) == everyone | {str(d)}  # the one who left included
    left_message = await latest(tap, "message_created", 4)  # "<c> left the talk"
    assert set(left_message.body["audience"]) == {str(a), str(b), str(d)}

    _, pos = await alice.command("DELETE", path)
    deleted = await latest(tap, "message_deleted", 1)
    assert deleted.body["data"] == await alice.read(path, pos)
    assert deleted.body["data"]["tm_delete"] != "" and deleted.body["data"]["text"] == ""

    _, pos = await alice.command("DELETE", f"{CHATS}/{chat_id}")
    chat_deleted = await latest(tap, "chat_deleted", 1)
    assert chat_deleted.body["data"] == without_viewer(await alice.read(f"{CHATS}/{chat_id}", pos))
    assert chat_deleted.body["data"]["tm_delete"] != ""

    # Everything, against the store: names, keys, properties, bodies, order, once each.
    expected = await expected_bodies(settings.database_url, customer, pos)
    assert {body["type"] for body in expected} == TEN_TYPES
    await tap.wait_for(len(expected), "every event of the customer")
    assert_published_as_expected(tap.received, expected)
    await assert_oracle_as_the_api_answers(talk_api, settings.database_url, customer, pos)
    assert len(tap.received) == len(expected)  # no broker trouble here: no repeats either
    for r in tap.received:
        assert r.message_id == r.body["event_id"]
        BODY_MODELS[r.body["type"]].model_validate(r.body)  # the AsyncAPI schema holds
    positions = [r.body["position"] for r in tap.received]
    assert positions == sorted(positions)
