"""``GET talk_chats?order=activity``: the caller's talks by their newest message, newest
first (``tm_last_message``; a talk without one by its ``tm_create``), with keyset pages; and
what a client paging through it sees when a talk moves."""

from __future__ import annotations

from tests.integration.api.conftest import CHATS


async def listed(agent, page_token: str = "", **params) -> list[dict]:
    """Every page from ``page_token`` on."""
    found: list[dict] = []
    token = page_token
    while True:
        page = await agent.ok("GET", CHATS, params={"page_token": token, **params})
        found += page["result"]
        token = page["next_page_token"]
        if not token:
            return found


def ids(talks: list[dict]) -> list[str]:
    return [t["id"] for t in talks]


async def test_newest_activity_first(talk):
    alice = talk.agent()
    bob = alice.colleague()
    a = await alice.create_talk()
    b = await alice.create_talk()
    c = await bob.create_talk(members=(alice,))
    await bob.create_talk()  # not alice's
    assert ids(await listed(alice)) == [c["id"], b["id"], a["id"]]
    assert ids(await listed(alice, order="created")) == [c["id"], b["id"], a["id"]]
    assert ids(await listed(alice, order="activity")) == [c["id"], b["id"], a["id"]]

    await alice.post(a, "bump a")
    await bob.post(c, "bump c")
    newest = await alice.post(b, "bump b")
    by_activity = await listed(alice, order="activity")
    assert ids(by_activity) == [b["id"], c["id"], a["id"]]
    assert by_activity[0]["tm_last_message"] == newest["tm_create"]
    assert [t["tm_last_message"] for t in by_activity] == sorted(
        (t["tm_last_message"] for t in by_activity), reverse=True)
    for size in (1, 2):
        assert ids(await listed(alice, order="activity", page_size=size)) == ids(by_activity)
    assert ids(await listed(alice)) == [c["id"], b["id"], a["id"]]  # created: unchanged


async def test_a_talk_that_moves_while_paging_is_not_repeated(talk):
    alice = talk.agent()
    a = await alice.create_talk()
    b = await alice.create_talk()
    c = await alice.create_talk()
    await alice.post(a, "a is newest")
    first = await alice.ok("GET", CHATS, params={"order": "activity", "page_size": 1})
    assert ids(first["result"]) == [a["id"]]

    await alice.post(c, "c moves ahead of the page already read")
    rest = await listed(alice, order="activity", page_size=1, page_token=first["next_page_token"])
    assert ids(rest) == [b["id"]]  # c moved above the cursor: not repeated, found afresh
    assert ids(await listed(alice, order="activity")) == [c["id"], a["id"], b["id"]]


async def test_bad_order_is_400(talk):
    alice = talk.agent()
    problem = await alice.problem(400, "GET", CHATS, params={"order": "newest"})
    assert [e["field"] for e in problem["errors"]] == ["order"]
