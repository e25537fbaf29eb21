"""The page of talks agrees with the other reads of the same talks, byte for byte.

``GET talk_chats`` renders every field of a talk in SQL (query_api/talk_list.py's
``talk_columns``, and query_api/viewer.py's ``message_columns`` for ``last_message``); the get
of a talk renders the talk with ``chat_resource``, and the reads of a message with
``message_resource`` (query_api/resources.py). Over a varied set of talks (group and normal,
several agents, mentions, medias, replies, reactions added and removed, edits, deletes, read
markers, a closed, a reopened and a deleted talk, a participant removed, text full of quotes,
backslashes, control characters and emoji), for each agent:

- the listing holds exactly the talks the agent can get and that are not deleted;
- each listed talk is the same JSON (the same bytes: field order, types, escapes) as its get;
- its ``last_message``, when it has one, is the same JSON as ``GET talk_messages/{id}`` and
  as the newest entry of the talk's message listing, and ``tm_last_message`` is its
  ``tm_create``;
- the other orders, status filters and small pages list the same talks, byte for byte.
"""

from __future__ import annotations

import orjson

from tests.integration.api.conftest import CHATS, MESSAGES

AWKWARD = ('say "hi" \\ back\\slash \'single\' tab\there\nnewline \x01 \x1f \x7f'
           " 😀 👨\u200d👩\u200d👧 e\u0301 \u2028 \u2029 </script> Café")
MEDIA = {"type": "image/png", "url": "https://cdn.example.com/a%20b.png", "name": 'ü "q" 😀'}


async def listing(agent, **params) -> list[dict]:
    """Every talk of the agent's listing (all pages), in the listing's order."""
    out: list[dict] = []
    token = ""
    while True:
        page = await agent.ok("GET", CHATS, params={**params, "page_token": token})
        out += page["result"]
        token = page["next_page_token"]
        if not token:
            return out


async def raw_get(agent, path: str) -> tuple[int, bytes]:
    resp = await agent.request("GET", path)
    return resp.status, await resp.read()


def assert_same_json(resource: dict, body: bytes) -> None:
    """``resource`` (from a listing) is ``body`` (another read's answer): the values first,
    for a readable diff, then the bytes (field order, number or string, escapes)."""
    assert resource == orjson.loads(body)
    assert orjson.dumps(resource) == body


async def build_talks(talk):
    """The talks, and the agents who look at them."""
    alice = talk.agent()
    bob, carol, dave = alice.colleague(), alice.colleague(), alice.colleague()
    stranger = talk.agent()  # another customer: none of its talks is listed to the others
    await stranger.create_talk("group", members=(stranger.colleague(),), name="elsewhere")
    chats = []

    # A busy group: mentions, a reply with medias, reactions, an edit, a delete, read markers.
    busy = await alice.create_talk("group", members=(bob, carol), name="busy",
                                   detail='tier "2" \\ ☃')
    chats.append(busy)
    first = await bob.post(busy, f"<@{alice.id}> look at this")
    await carol.post(busy, f"<@{bob.id}> <@{alice.id}> both of you")
    question = await alice.post(busy, AWKWARD)
    await bob.post(busy, "a reply", parent_id=question["id"], medias=[MEDIA])
    gone = await carol.post(busy, f"<@{alice.id}> soon gone")
    await carol.ok("DELETE", f"{MESSAGES}/{gone['id']}")
    await alice.ok("POST", f"{CHATS}/{busy['id']}/read", json={"message_id": first["id"]})
    newest = await bob.post(busy, f"<@{carol.id}> {AWKWARD}", parent_id=first["id"],
                            medias=[MEDIA, {**MEDIA, "name": "second"}])
    await bob.ok("PUT", f"{MESSAGES}/{newest['id']}", json={"text": f"edited <@{alice.id}> ✓"})
    await alice.react(newest, "👨‍👩‍👧")
    await carol.react(newest, "thumbsup")
    await carol.react(newest, "😀")
    await carol.ok("DELETE", f"{MESSAGES}/{newest['id']}/reactions", json={"emoji": "😀"})

    # Normal talks: alice and bob (awkward text last), bob and carol (alice not in it).
    pair = await alice.create_talk("normal", members=(bob,))
    chats.append(pair)
    await alice.post(pair, "ping")
    await bob.post(pair, AWKWARD)
    other_pair = await bob.create_talk("normal", members=(carol,))
    chats.append(other_pair)
    await carol.post(other_pair, f"<@{bob.id}>")
    await bob.ok("POST", f"{CHATS}/{other_pair['id']}/read", json={})

    # No message at all, an awkward name renamed.
    empty = await carol.create_talk("group", members=(alice,), name="x", detail="")
    chats.append(empty)
    await carol.ok("PUT", f"{CHATS}/{empty['id']}", json={"name": f"n {AWKWARD}"[:200],
                                                          "detail": AWKWARD})

    # Closed with a message; closed then reopened.
    closed = await bob.create_talk("group", members=(alice, dave), name="closed")
    chats.append(closed)
    await dave.post(closed, f"<@{alice.id}> before closing", medias=[MEDIA])
    await bob.ok("POST", f"{CHATS}/{closed['id']}/close")
    reopened = await alice.create_talk("group", members=(carol,), name="reopened")
    chats.append(reopened)
    await carol.post(reopened, "x")
    await alice.ok("POST", f"{CHATS}/{reopened['id']}/close")
    await carol.ok("POST", f"{CHATS}/{reopened['id']}/reopen")

    # The newest message deleted (a tombstone), and one whose newest is a system message.
    tombstone = await alice.create_talk("group", members=(bob, dave))
    chats.append(tombstone)
    await bob.post(tombstone, f"<@{alice.id}> a")
    last = await dave.post(tombstone, "b", medias=[MEDIA])
    await dave.react(last, "thumbsup")
    await dave.ok("DELETE", f"{MESSAGES}/{last['id']}")
    left = await dave.create_talk("group", members=(alice, bob), name="dave leaves")
    chats.append(left)
    await dave.post(left, "bye")
    await alice.remove(left, await alice.participant_of(left, dave))

    # Deleted: listed to nobody.
    deleted = await alice.create_talk("group", members=(bob, carol), name="deleted")
    chats.append(deleted)
    await bob.post(deleted, f"<@{alice.id}>")
    await alice.ok("DELETE", f"{CHATS}/{deleted['id']}")
    return (alice, bob, carol, dave), chats


async def test_each_listed_talk_is_its_get_and_its_last_message_the_messages(talk):
    agents, chats = await build_talks(talk)
    seen: set[str] = set()
    for agent in agents:
        listed = await listing(agent)
        gettable = set()
        for chat in chats:
            status, body = await raw_get(agent, f"{CHATS}/{chat['id']}")
            if status == 200 and not orjson.loads(body)["tm_delete"]:
                gettable.add(chat["id"])
        assert [t["id"] for t in listed if t["id"] in gettable] == [t["id"] for t in listed]
        assert {t["id"] for t in listed} == gettable
        assert len(listed) == len(gettable)

        for t in listed:
            status, body = await raw_get(agent, f"{CHATS}/{t['id']}")
            assert status == 200
            assert_same_json(t, body)
            last = t["last_message"]
            if last is None:  # (not seen here: creating a talk posts a system message)
                assert t["tm_last_message"] == ""
                continue
            assert t["tm_last_message"] == last["tm_create"]
            status, body = await raw_get(agent, f"{MESSAGES}/{last['id']}")
            assert status == 200
            assert_same_json(last, body)
            newest = (await agent.ok("GET", MESSAGES, params={"chat_id": t["id"],
                                                               "page_size": 1}))["result"][0]
            assert_same_json(last, orjson.dumps(newest))
            seen.update(kind for kind, there in (
                ("unread", t["unread_count"] > 0), ("mentioned", t["mention_count"] > 0),
                ("closed", t["status"] == "closed"), ("normal", t["type"] == "normal"),
                ("medias", bool(last["medias"])), ("reactions", bool(last["metadata"]["reactions"])),
                ("reply", bool(last["parent_id"])), ("edited", last["tm_update"] != last["tm_create"]),
                ("deleted last", bool(last["tm_delete"])), ("system", last["owner_type"] == "system"),
                ("mentions", bool(last["mentions"])), ("awkward", "\x01" in last["text"])
            ) if there)

        by_id = {t["id"]: orjson.dumps(t) for t in listed}
        for order in ("created", "activity"):
            for status in (None, "active", "closed"):
                params = {"order": order, "page_size": 2, **({"status": status} if status else {})}
                page = await listing(agent, **params)
                assert {t["id"] for t in page} == {
                    t["id"] for t in listed if status in (None, t["status"])}, params
                for t in page:
                    assert orjson.dumps(t) == by_id[t["id"]], params
    assert seen == {"unread", "mentioned", "closed", "normal", "medias", "reactions", "reply",
                    "edited", "deleted last", "system", "mentions", "awkward"}, seen
