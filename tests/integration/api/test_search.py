"""Search: ``GET talk_messages?q=...`` finds the live messages of the caller's talks whose
current text holds every word of ``q`` (whole or as a prefix), case and accents ignored,
newest first; never another customer's, nor a talk the caller is not in."""

from __future__ import annotations

from uuid import uuid4

import pytest

from tests.integration.api.conftest import MESSAGES


async def search(agent, q: str, **params) -> list[dict]:
    """Every page of the search, in order."""
    found: list[dict] = []
    token = ""
    while True:
        page = await agent.ok("GET", MESSAGES, params={"q": q, "page_token": token, **params})
        found += page["result"]
        token = page["next_page_token"]
        if not token:
            return found


async def texts(agent, q: str, **params) -> list[str]:
    return [m["text"] for m in await search(agent, q, **params)]


async def test_case_accents_and_prefixes(talk):
    alice = talk.agent()
    chat = await alice.create_talk()
    cafe = await alice.post(chat, "Café au LAIT à Łódź, s'il vous plaît")
    await alice.post(chat, "Straße ÆRØ naïve Ελληνικά ПРИВЕТ")
    await alice.post(chat, "nothing to see")

    for q in ("cafe", "CAFÉ", "Cafe\u0301", "café lait", "lait CAFE", "caf", "lod", "LODZ",
              "plait", "s'il", "caf la"):
        assert await texts(alice, q) == [cafe["text"]], q
    for q in ("strasse", "aero", "NAIVE", "ελληνικα", "Привет", "прив"):
        assert await texts(alice, q) == ["Straße ÆRØ naïve Ελληνικά ПРИВЕТ"], q
    for q in ("afe", "cafes", "cafe tea", "laitx", "vu"):
        assert await texts(alice, q) == [], q
    [found] = await search(alice, "cafe")
    assert found == await alice.get_message(cafe)


async def test_edits_and_deletes(talk):
    alice = talk.agent()
    chat = await alice.create_talk()
    message = await alice.post(chat, "the quarterly invoice is late")
    gone = await alice.post(chat, "the quarterly report is secret")
    assert len(await search(alice, "quarterly")) == 2

    edited = await alice.ok("PUT", f"{MESSAGES}/{message['id']}",
                            json={"text": "the yearly receipt is late"})
    await alice.ok("DELETE", f"{MESSAGES}/{gone['id']}")
    assert await search(alice, "invoice") == []
    assert await search(alice, "secret") == []
    assert await search(alice, "quarterly") == []
    assert await search(alice, "receipt") == [edited]
    assert await texts(alice, "late") == ["the yearly receipt is late"]


async def test_only_the_callers_talks_and_customer(talk):
    alice = talk.agent()
    bob = alice.colleague()
    carol = alice.colleague()
    mine = await alice.create_talk(members=(bob,))
    theirs = await bob.create_talk(members=(carol,))  # alice is not in it
    left = await alice.create_talk(members=(bob,))
    stranger = talk.agent()  # another customer, the same words
    foreign = await stranger.create_talk()

    ours = await bob.post(mine, "zephyr alpha")
    await carol.post(theirs, "zephyr beta")
    await bob.post(left, "zephyr gamma")
    await stranger.post(foreign, "zephyr delta")
    alice_in_left = await bob.participant_of(left, alice)
    await bob.remove(left, alice_in_left)

    assert [m["id"] for m in await search(alice, "zephyr")] == [ours["id"]]
    assert await texts(bob, "zephyr") == ["zephyr gamma", "zephyr beta", "zephyr alpha"]
    assert await texts(stranger, "zephyr") == ["zephyr delta"]
    assert await texts(alice, "zephyr", chat_id=mine["id"]) == ["zephyr alpha"]
    await alice.problem(403, "GET", MESSAGES, params={"q": "zephyr", "chat_id": theirs["id"]})
    await alice.problem(404, "GET", MESSAGES, params={"q": "zephyr", "chat_id": foreign["id"]})
    # The customer's id is not a word of any message.
    assert await search(alice, str(alice.customer_id).replace("-", "")) == []


async def test_within_one_talk_and_one_thread(talk):
    alice = talk.agent()
    first = await alice.create_talk()
    second = await alice.create_talk()
    root = await alice.post(first, "orchid root")
    reply = await alice.post(first, "orchid reply", parent_id=root["id"])
    await alice.post(first, "orchid elsewhere")
    await alice.post(second, "orchid second")
    assert await texts(alice, "orchid", chat_id=first["id"]) == [
        "orchid elsewhere", "orchid reply", "orchid root"]
    assert await texts(alice, "orchid", chat_id=second["id"]) == ["orchid second"]
    assert [m["id"] for m in await search(alice, "orchid", chat_id=first["id"],
                                          parent_id=root["id"])] == [reply["id"]]
    assert [m["id"] for m in await search(alice, "orchid", parent_id=root["id"])] == [reply["id"]]
    assert await texts(alice, "orchid") == [
        "orchid second", "orchid elsewhere", "orchid reply", "orchid root"]


async def test_pages_never_repeat_or_skip(talk):
    alice = talk.agent()
    chats = [await alice.create_talk() for _ in range(3)]
    posted = []
    for i in range(11):
        posted.append(await alice.post(chats[i % 3], f"marmot number {i}"))
    await alice.post(chats[0], "not a rodent")
    expected = [m["id"] for m in reversed(posted)]
    for size in (1, 3, 4, 100):
        assert [m["id"] for m in await search(alice, "marmot", page_size=size)] == expected


@pytest.mark.parametrize("q", ["!!!", " ", "-", "x" * 201])
async def test_a_query_without_words_is_400(talk, q):
    alice = talk.agent()
    await alice.create_talk()
    problem = await alice.problem(400, "GET", MESSAGES, params={"q": q})
    assert [e["field"] for e in problem["errors"]] == ["q"]


async def test_an_empty_q_lists(talk):
    alice = talk.agent()
    chat = await alice.create_talk()
    message = await alice.post(chat, "plain")
    page = await alice.ok("GET", MESSAGES, params={"q": "", "chat_id": chat["id"]})
    assert page["result"][0] == message


async def test_an_unknown_parent_is_404(talk):
    alice = talk.agent()
    await alice.problem(404, "GET", MESSAGES, params={"q": "x", "parent_id": str(uuid4())})
