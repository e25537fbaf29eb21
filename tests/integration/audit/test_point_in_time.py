"""A talk at a moment, folded from the history, equals what the query API showed at that
moment: a scripted talk is read through the query API at three moments; afterwards the audit
endpoint (by position and by time) and ``talk events state`` give the same talk back."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import psycopg
import pytest

from events.append_statements import statement_for
from events.catalogue import chat_stream
from events.point_in_time import (
    AtPosition,
    AtTime,
    BadMoment,
    NoSuchPosition,
    NotFinalYet,
    parse_moment,
    talk_state,
)
from events.position_token import parse_position
from services.timefmt import format_ts, utcnow
from tests.factories import new_chat_append
from tests.integration.audit.conftest import (
    AUDIT_CHATS,
    CHATS,
    MESSAGES,
    Agent,
    Session,
    admin,
    seed_talks,
    store_on,
    talk_cli,
)


async def look(alice: Agent, chat_id: str) -> dict:
    """What the query API shows now (waiting for the last command to be projected)."""
    talk = await alice.get(f"{CHATS}/{chat_id}")
    for viewer_field in ("unread_count", "mention_count", "last_message", "tm_last_message"):
        talk.pop(viewer_field)  # the talk as the caller sees it; the audit shows the talk
    participants = (await alice.get(f"{CHATS}/{chat_id}/participants"))["result"]
    messages = (await alice.get(MESSAGES, {"chat_id": chat_id, "page_size": "100"}))["result"]
    return {"position": parse_position(str(alice.session.position)).position, "time": format_ts(utcnow()), "talk": talk,
            "participants": participants, "messages": messages}


def shown(state: dict) -> dict:
    """The audit state without its extras, in the query API's shape."""
    drop = ("edited", "versions")
    return {"talk": state["talk"], "participants": state["participants"],
            "messages": [{k: v for k, v in m.items() if k not in drop} for m in state["messages"]]}


async def test_state_at_three_moments_equals_what_the_query_api_showed(api, settings):
    session = Session(api)
    alice = session.agent()
    bob = session.agent(alice.customer_id)
    carol = session.agent(alice.customer_id)
    auditor = session.agent(alice.customer_id, roles=["audit"])  # in no talk
    moments = []

    chat = await alice.command("POST", CHATS, {"type": "group", "name": "ops", "participants": [
        {"owner_type": "agent", "owner_id": bob.id}]})
    m1 = await alice.command("POST", MESSAGES, {"chat_id": chat["id"], "text": "hello"})
    m2 = await bob.command("POST", MESSAGES, {"chat_id": chat["id"], "text": "hi",
                                              "parent_id": m1["id"]})
    moments.append(await look(alice, chat["id"]))

    await alice.command("PUT", f"{MESSAGES}/{m1['id']}", {"text": "hello, edited"})
    await bob.command("POST", f"{MESSAGES}/{m1['id']}/reactions", {"emoji": "👍"})
    await alice.command("POST", f"{MESSAGES}/{m1['id']}/reactions", {"emoji": "tada"})
    await alice.command("POST", f"{CHATS}/{chat['id']}/participants",
                        {"owner_type": "agent", "owner_id": carol.id})
    await carol.command("POST", MESSAGES, {"chat_id": chat["id"], "text": "late ☃ \"quoted\"",
                                           "medias": [{"type": "image/png", "url": "https://x.test/a.png",
                                                       "name": "a.png"}]})
    moments.append(await look(alice, chat["id"]))

    await alice.command("PUT", f"{MESSAGES}/{m1['id']}", {"text": "hello, edited twice"})
    await bob.command("DELETE", f"{MESSAGES}/{m1['id']}/reactions", {"emoji": "👍"})
    await bob.command("DELETE", f"{MESSAGES}/{m2['id']}")
    bob_in = next(p for p in moments[1]["participants"] if p["owner_id"] == bob.id)
    await alice.command("DELETE", f"{CHATS}/{chat['id']}/participants/{bob_in['id']}")
    await alice.command("PUT", f"{CHATS}/{chat['id']}", {"name": "ops renamed"})
    moments.append(await look(alice, chat["id"]))

    await alice.command("POST", MESSAGES, {"chat_id": chat["id"], "text": "after the moments"})
    await look(alice, chat["id"])

    # the script did change what the API showed
    assert [len(m["participants"]) for m in moments] == [2, 3, 2]
    assert len({json.dumps(m["messages"]) for m in moments}) == 3

    answers = []
    for moment in moments:
        by_position = await auditor.get(f"{AUDIT_CHATS}/{chat['id']}",
                                        {"at": str(moment["position"])})
        by_time = await auditor.get(f"{AUDIT_CHATS}/{chat['id']}", {"at": moment["time"]})
        expected = {k: moment[k] for k in ("talk", "participants", "messages")}
        assert shown(by_position) == expected
        assert shown(by_time) == expected
        assert by_position["at"] == {"position": moment["position"]}
        assert by_position["last_event"]["position"] == moment["position"]
        answers.append(by_position)

    def edit_state(state: dict) -> tuple:
        m = next(m for m in state["messages"] if m["id"] == m1["id"])
        return m["edited"], m["versions"], m["text"]

    assert [edit_state(a) for a in answers] == [
        (False, 1, "hello"), (True, 2, "hello, edited"), (True, 3, "hello, edited twice")]
    now = await auditor.get(f"{AUDIT_CHATS}/{chat['id']}")  # no at: as it is now
    assert now["messages"][0]["text"] == "after the moments"

    # `talk events state` prints the same as the audit endpoint
    ran = await asyncio.to_thread(talk_cli, settings.database_url, "events", "state",
                                  "--chat-id", chat["id"], "--at", str(moments[1]["position"]))
    assert ran.code == 0, ran.stderr
    assert json.loads(ran.stdout) == answers[1]


def test_moments_parse():
    assert parse_moment("42") == AtPosition(42)
    assert parse_moment(" 0 ") == AtPosition(0)
    expected = AtTime(datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC))
    assert parse_moment("2024-05-06 07:08:09.123456") == expected  # the API format, UTC
    assert parse_moment("2024-05-06T07:08:09.123456Z") == expected
    assert parse_moment("2024-05-06T09:08:09.123456+02:00") == expected
    for bad in ("", "-1", "soon", "2024-02-30", "١٢", "0001-01-01T00:00:00+01:00"):
        with pytest.raises(BadMoment):
            parse_moment(bad)


def test_a_position_is_answered_once_the_history_before_it_is_final(fresh_database_url):
    """An event committed while an earlier transaction is still in flight: the state at its
    position waits for that transaction (NotFinalYet meanwhile), then includes it."""
    url = fresh_database_url

    async def commit_a_talk() -> tuple:
        async with store_on(url) as store:
            [chat_id] = await seed_talks(store, 1, 2)
            return chat_id, await store.stream_version(chat_stream(chat_id))

    async def state_at(chat_id, position, wait=0.1):
        async with store_on(url) as store:
            return await talk_state(store.db, chat_id, AtPosition(position), wait=wait)

    slow, slow_md = new_chat_append()
    with psycopg.connect(url) as in_flight:  # kept short: the barrier is cluster-wide
        in_flight.execute(*statement_for([slow], slow_md))
        chat_id, _ = asyncio.run(commit_a_talk())
        with admin(url) as conn:
            last = conn.execute("SELECT max(position) FROM events WHERE stream_id = %s",
                                (chat_stream(chat_id),)).fetchone()[0]
        with pytest.raises(NotFinalYet):
            asyncio.run(state_at(chat_id, last))
        in_flight.commit()
    # final once every earlier transaction is done (other sessions' ones too: the barrier is
    # the cluster's oldest transaction)
    state = asyncio.run(state_at(chat_id, last, wait=30))
    assert state["talk"]["id"] == str(chat_id) and state["talk"]["name"] == "name 2 ☃ \"q\""
    with pytest.raises(NoSuchPosition):
        asyncio.run(state_at(chat_id, last + 1000))


def test_the_fold_reads_older_schema_versions_through_the_upcasters():
    """A stored v1 ChatUpdated, with a v2 in the catalogue and an upcaster v1 -> v2: the state
    is folded from the upcast event."""
    from typing import ClassVar
    from uuid import uuid4

    from events import catalogue as ev
    from events.envelope import Metadata, StoredEvent
    from events.point_in_time import TalkFold
    from events.upcasting import Upcasters

    class ChatUpdatedV2(ev.ChatUpdated):
        schema_version: ClassVar[int] = 2
        reason: str

    upcasters = Upcasters({**ev.EVENT_TYPES, "ChatUpdated": ChatUpdatedV2})

    @upcasters.register("ChatUpdated", 1)
    def _v1_to_v2(data: dict) -> dict:
        return {**data, "name": f"{data['name']} (v1)", "reason": "unknown"}

    chat_id, customer = uuid4(), uuid4()
    meta = Metadata(customer, "agent", uuid4()).to_json()
    now = utcnow()
    created = ev.ChatCreated(chat_id=chat_id, customer_id=customer, type="group", name="a",
                             detail="", tm_create=now)
    renamed_v1 = {"chat_id": str(chat_id), "name": "b", "detail": None,
                  "tm_update": now.isoformat()}
    stored = [
        StoredEvent(1, 1, uuid4(), ev.chat_stream(chat_id), 1, "ChatCreated", 1,
                    created.model_dump(mode="json"), meta, now),
        StoredEvent(2, 2, uuid4(), ev.chat_stream(chat_id), 2, "ChatUpdated", 1, renamed_v1,
                    meta, now),
    ]
    fold = TalkFold(upcasters)
    for event in stored:
        fold.apply(event)
    state = fold.state(AtPosition(2))
    assert state["talk"]["name"] == "b (v1)"
    assert state["last_event"]["position"] == 2
