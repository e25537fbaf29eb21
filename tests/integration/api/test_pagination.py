"""Keyset pagination, newest first: every item exactly once even when many items share a
``tm_create`` to the microsecond (forced here by appending events straight to the store)."""

from __future__ import annotations

import base64
from datetime import timedelta
from uuid import uuid4

import pytest

from events import catalogue as ev
from events.envelope import Metadata, NewEvent
from events.position_token import format_position
from events.postgres_store import PostgresEventStore
from events.store import StreamAppend
from services.timefmt import format_ts, parse_ts, utcnow
from tests.integration.api.conftest import CHATS, MESSAGES, Agent, TalkClient

TIED = 25


async def _append(talk: TalkClient, agent: Agent, events: list[ev.Event]) -> None:
    """Append each event to its own new stream (chat events to the talk's stream, appended
    in order) in one transaction, and make the next GETs wait for the projection."""
    store = PostgresEventStore(talk.db)
    by_stream: dict[str, list[NewEvent]] = {}
    for event in events:
        stream = (ev.message_stream(event.message_id) if hasattr(event, "message_id")
                  else ev.chat_stream(event.chat_id))
        by_stream.setdefault(stream, []).append(NewEvent(stream, event))
    metadata = Metadata(customer_id=agent.customer_id, actor_type="agent", actor_id=agent.agent_id)
    versions = {s: await store.stream_version(s) for s in by_stream}
    result = await store.append(
        [StreamAppend(s, versions[s], tuple(evs)) for s, evs in by_stream.items()], metadata)
    talk.position = max(talk.position, int(format_position(result.checkpoint)))


def _posted(chat_id, agent: Agent, when, parent_id=None) -> ev.MessagePosted:
    return ev.MessagePosted(message_id=uuid4(), chat_id=chat_id, parent_id=parent_id,
                            owner_type="agent", owner_id=agent.agent_id, type="normal",
                            text="tie", tm_create=when)


async def _all_pages(agent: Agent, path: str, page_size: int, **params) -> list[dict]:
    out, token, pages = [], "", 0
    while True:
        page = await agent.ok("GET", path, params={**params, "page_size": page_size,
                                                   "page_token": token})
        pages += 1
        assert len(page["result"]) <= page_size
        out += page["result"]
        token = page["next_page_token"]
        if not token:
            assert pages == max(1, -(-len(out) // page_size))
            return out


def _newest_first(items: list[dict]) -> bool:
    keys = [(i["tm_create"], i["id"]) for i in items]
    return keys == sorted(keys, reverse=True)


@pytest.fixture()
async def tied_talk(talk: TalkClient):
    """A talk with its creator's join message, 3 older messages, and 25 newer messages (10 of
    them replies to the first older one) that share one tm_create."""
    alice = talk.agent()
    chat = await alice.create_talk()
    older = [await alice.post(chat, f"older {i}") for i in range(3)]
    tie = parse_ts(older[-1]["tm_create"]) + timedelta(seconds=1)
    root = older[0]["id"]
    events = [_posted(chat["id"], alice, tie, parent_id=root if i < 10 else None)
              for i in range(TIED)]
    await _append(talk, alice, events)
    return alice, chat, older, tie


async def test_tied_messages_page_exactly_once(tied_talk):
    alice, chat, older, tie = tied_talk
    everything = await _all_pages(alice, MESSAGES, 100, chat_id=chat["id"])
    assert len(everything) == TIED + 3 + 1
    assert _newest_first(everything)
    assert sum(m["tm_create"] == format_ts(tie) for m in everything) == TIED
    for size in range(1, 8):
        paged = await _all_pages(alice, MESSAGES, size, chat_id=chat["id"])
        assert [m["id"] for m in paged] == [m["id"] for m in everything], f"page_size {size}"


async def test_tied_replies_page_exactly_once(tied_talk):
    alice, chat, older, _ = tied_talk
    thread = await _all_pages(alice, MESSAGES, 100, chat_id=chat["id"], parent_id=older[0]["id"])
    assert len(thread) == 10 and _newest_first(thread)
    for size in (1, 3, 4):
        paged = await _all_pages(alice, MESSAGES, size, chat_id=chat["id"], parent_id=older[0]["id"])
        assert [m["id"] for m in paged] == [m["id"] for m in thread]


async def test_a_bare_timestamp_is_a_token(tied_talk):
    alice, chat, older, tie = tied_talk
    page = await alice.ok("GET", MESSAGES, params={"chat_id": chat["id"], "page_token": format_ts(tie)})
    # Strictly before the instant: the older messages and the creator's join.
    assert [m["id"] for m in page["result"][:3]] == [m["id"] for m in reversed(older)]
    assert page["result"][3]["type"] == "system" and len(page["result"]) == 4
    assert page["next_page_token"] == ""
    page = await alice.ok("GET", MESSAGES, params={
        "chat_id": chat["id"], "page_token": older[1]["tm_create"], "page_size": 1})
    assert [m["id"] for m in page["result"]] == [older[0]["id"]]
    assert page["next_page_token"] != ""
    future = format_ts(utcnow() + timedelta(days=1))
    page = await alice.ok("GET", MESSAGES, params={"chat_id": chat["id"], "page_token": future})
    assert len(page["result"]) == TIED + 4


async def test_tied_talks_page_exactly_once(talk):
    alice = talk.agent()
    tie = utcnow()
    events: list[ev.Event] = []
    for _ in range(12):
        chat_id = uuid4()
        events += [
            ev.ChatCreated(chat_id=chat_id, customer_id=alice.customer_id, type="group",
                           name="tie", detail="", tm_create=tie),
            ev.ParticipantJoined(chat_id=chat_id, participant_id=uuid4(), owner_type="agent",
                                 owner_id=alice.agent_id, tm_joined=tie),
        ]
    await _append(talk, alice, events)
    newest = await alice.create_talk(name="newest")
    everything = await _all_pages(alice, CHATS, 100)
    assert len(everything) == 13 and everything[0]["id"] == newest["id"]
    assert _newest_first(everything)
    for size in range(1, 6):
        paged = await _all_pages(alice, CHATS, size)
        assert [c["id"] for c in paged] == [c["id"] for c in everything]


async def test_the_last_page_has_an_empty_token(talk):
    alice = talk.agent()
    chat = await alice.create_talk()
    await alice.post(chat, "one")
    page = await alice.ok("GET", MESSAGES, params={"chat_id": chat["id"], "page_size": 2})
    assert len(page["result"]) == 2 and page["next_page_token"] == ""
    page = await alice.ok("GET", MESSAGES, params={"chat_id": chat["id"], "page_size": 1})
    assert len(page["result"]) == 1 and page["next_page_token"] != ""
    page = await alice.ok("GET", MESSAGES, params={"chat_id": chat["id"],
                                                   "page_token": page["next_page_token"]})
    assert len(page["result"]) == 1 and page["next_page_token"] == ""
    assert await alice.ok("GET", CHATS, params={"page_size": 100}) == {
        "result": [await alice.get_chat(chat)], "next_page_token": ""}


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.fixture(scope="module")
async def paged_talk(module_talk):
    alice = module_talk.agent()
    return alice, await alice.create_talk()


@pytest.mark.parametrize("params", [
    pytest.param({"page_size": "0"}, id="size-0"),
    pytest.param({"page_size": "101"}, id="size-101"),
    pytest.param({"page_size": "-1"}, id="size-negative"),
    pytest.param({"page_size": "abc"}, id="size-abc"),
    pytest.param({"page_size": "1.5"}, id="size-fraction"),
    pytest.param({"page_token": "garbage"}, id="token-garbage"),
    pytest.param({"page_token": "!!!!"}, id="token-not-base64"),
    pytest.param({"page_token": _b64("yesterday|" + str(uuid4()))}, id="token-bad-time"),
    pytest.param({"page_token": _b64("2024-01-01 00:00:00.000000|nope")}, id="token-bad-id"),
    pytest.param({"page_token": "2024-01-01 00:00:00"}, id="timestamp-without-micros"),
])
async def test_bad_page_parameters_are_400(paged_talk, params):
    alice, chat = paged_talk
    await alice.problem(400, "GET", CHATS, params=params)
    await alice.problem(400, "GET", MESSAGES, params={"chat_id": chat["id"], **params})
    await alice.problem(400, "GET", f"/v1.0/talks/{chat['id']}/messages", params=params)
