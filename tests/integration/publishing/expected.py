"""What the publisher should have published for one customer, worked out from the event store
on the test's side: the event names and routing keys of DESIGN, ``data`` from the events'
own payloads (:mod:`tests.integration.publishing.oracle`, no function of the service),
``audience`` from the talk's membership; and the newest ``data`` of each resource compared
with what the query API answers for it."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from aiohttp.test_utils import TestClient
from psycopg.rows import dict_row

from events.envelope import START, StoredEvent
from events.postgres_store import read_all_on
from tests.integration.publishing.oracle import Oracle
from tests.integration.publishing.tap import Received
from tests.support import bearer, wait_until

# DESIGN, "Published stream" (and Talk 1.1's events).
NAMES = {
    "ChatCreated": "chat_created", "ChatUpdated": "chat_updated", "ChatDeleted": "chat_deleted",
    "ChatClosed": "chat_closed", "ChatReopened": "chat_reopened", "ChatRead": "chat_read",
    "ParticipantJoined": "participant_joined", "ParticipantLeft": "participant_left",
    "MessagePosted": "message_created", "MessageEdited": "message_updated",
    "MessageDeleted": "message_deleted", "ReactionAdded": "reaction_added",
    "ReactionRemoved": "reaction_removed",
}


async def stored_events(url: str, customer_id: UUID) -> list[StoredEvent]:
    """The customer's events in the store's global order."""
    out: list[StoredEvent] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        checkpoint = START
        while batch := await read_all_on(conn, checkpoint, 5000):
            out += [s for s in batch if s.customer_id == customer_id]
            checkpoint = batch[-1].checkpoint
    return out


async def stored_events_all_readable(url: str, customer_id: UUID) -> list[StoredEvent] | None:
    """The customer's events in the global order, once every committed one is readable that
    way (None before: the ordered reads stop at the server's oldest open transaction, in any
    database); for ``wait_until``."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT count(*) FROM events WHERE metadata->>'customer_id' = %s",
                                 (str(customer_id),))
        committed = (await cur.fetchone())[0]
    stored = await stored_events(url, customer_id)
    return stored if len(stored) == committed else None


async def expected_bodies(url: str, customer_id: UUID, through: int) -> list[dict[str, Any]]:
    """Every body to be published for the customer, in order (``audience`` sorted; ``data``
    holding the fields the oracle knows), once the store's reads have passed ``through``
    (the position of the customer's last event)."""

    async def through_last() -> list[StoredEvent] | None:
        # A transaction still open anywhere on the server holds the reads back (tx_id < xmin).
        events = await stored_events(url, customer_id)
        return events if any(s.position == through for s in events) else None

    events = await wait_until(through_last, what="the store's reads to pass the last event")
    decoded = [s.decode() for s in events]
    oracle = Oracle(customer_id)
    members: dict[str, set[str]] = {}  # talk -> its agents
    created_in: dict[str, int] = {}  # talk -> the transaction that created it
    bodies = []
    for stored, event in zip(events, decoded, strict=True):
        chat = str(event.chat_id)
        talk = members.setdefault(chat, set())
        data = oracle.data(stored.type, event)
        if stored.type == "ParticipantJoined":
            talk.add(str(event.owner_id))
        audience = set(talk)
        if stored.type == "ParticipantJoined" and created_in.get(chat) == stored.tx_id:
            audience = {str(event.owner_id)}  # a creating join: the others learn it from
            # chat_created (N members told of N joins each would be N x N)
        elif stored.type == "ParticipantLeft":
            talk.discard(str(event.owner_id))  # the one who left is told too
        elif stored.type == "ChatRead":
            audience = {str(event.owner_id)}  # the reader alone
        elif stored.type == "ChatCreated":  # the participants it is created with
            created_in[chat] = stored.tx_id
            audience = {str(e.owner_id) for s, e in zip(events, decoded, strict=True)
                        if s.tx_id == stored.tx_id and s.type == "ParticipantJoined"
                        and str(e.chat_id) == chat}
        bodies.append({
            "type": NAMES[stored.type], "event_id": str(stored.event_id),
            "position": stored.position, "customer_id": str(customer_id),
            "chat_id": chat, "audience": sorted(audience), "data": data,
        })
    return bodies


def comparable(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "audience": sorted(body["audience"])}


def assert_published_as_expected(received: list[Received], expected: list[dict[str, Any]]) -> None:
    """Each expected event published once after dedupe, with the expected routing key,
    properties and body, in the expected order within each talk."""
    first: dict[str, Received] = {}
    for r in received:
        first.setdefault(r.message_id, r)
    assert set(first) == {b["event_id"] for b in expected}, "published events differ from the store's"
    for body in expected:
        got = first[body["event_id"]]
        assert got.routing_key == f"{body['customer_id']}.{body['chat_id']}.{body['type']}"
        assert got.content_type == "application/json"
        assert got.delivery_mode == 2
        got_body = comparable(got.body)
        envelope = {k: v for k, v in body.items() if k != "data"}
        assert {k: v for k, v in got_body.items() if k != "data"} == envelope, (
            body["type"], {k: v for k, v in got_body.items() if k != "data"}, envelope)
        assert {k: got_body["data"].get(k) for k in body["data"]} == body["data"], body["type"]
    position = {b["event_id"]: b["position"] for b in expected}
    for chat_id in {b["chat_id"] for b in expected}:
        order = [position[r.message_id] for r in first.values() if r.body["chat_id"] == chat_id]
        want = [b["position"] for b in expected if b["chat_id"] == chat_id]
        assert order == want, f"talk {chat_id}: published out of order"


async def assert_oracle_as_the_api_answers(client: TestClient, url: str, customer_id: UUID,
                                           through: int) -> None:
    """The test's oracle, folded over the customer's whole history, holds each talk,
    participant and message as the query API answers it now (asked by an agent still in the
    talk, once the projection has reached ``through``): the expected ``data`` is anchored
    in the query API, not in the functions the outbox uses."""
    oracle = Oracle(customer_id)
    for stored in await stored_events(url, customer_id):
        oracle.data(stored.type, stored.decode())
    base = "/v1.0/service_agents"
    checked = 0
    for chat_id, talk in oracle.talks.items():
        members = oracle.members.get(chat_id, {})
        if not members:
            continue  # nobody left in the talk to ask
        agent = next(iter(members.values()))["owner_id"]
        headers = {**bearer(customer_id, UUID(agent)), "X-Talk-Min-Position": str(through)}

        async def get(path: str) -> Any:
            resp = await client.get(path, headers=headers)  # noqa: B023
            assert resp.status == 200, f"GET {path}: {resp.status} {await resp.text()}"
            return await resp.json()

        expected = {"talk": [talk], "participants": sorted(members.values(), key=_id),
                    "messages": sorted((m for m in oracle.messages.values()
                                        if m["chat_id"] == chat_id), key=_id)}
        answers = {"talk": [await get(f"{base}/talk_chats/{chat_id}")],
                   "participants": sorted((await get(f"{base}/talk_chats/{chat_id}/participants"))["result"],
                                          key=_id),
                   "messages": sorted([await get(f"{base}/talk_messages/{m['id']}")
                                       for m in expected["messages"]], key=_id)}
        for kind, wanted in expected.items():
            got = [{k: a.get(k) for k in w} for a, w in zip(answers[kind], wanted, strict=True)]
            assert got == wanted, f"{kind} of talk {chat_id}: the query API differs from the test's oracle"
            checked += len(wanted)
    assert checked, "nothing compared with the query API"


def _id(resource: dict[str, Any]) -> str:
    return resource["id"]
