"""What the publisher should have published for one customer, worked out from the event store
on the test's side: the event names and routing keys of DESIGN, ``data`` from the query API's
pure row folds and resource formatters, ``audience`` from the talk's membership."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from events import catalogue as ev
from events.envelope import START, StoredEvent
from events.postgres_store import read_all_on
from query_api.resources import (
    chat_resource,
    evolve_chat_row,
    evolve_message_row,
    message_resource,
    participant_resource,
    participant_row,
)
from tests.integration.publishing.tap import Received
from tests.support import wait_until

# DESIGN, "Published stream".
NAMES = {
    ev.ChatCreated: "chat_created", ev.ChatUpdated: "chat_updated", ev.ChatDeleted: "chat_deleted",
    ev.ParticipantJoined: "participant_joined", ev.ParticipantLeft: "participant_left",
    ev.MessagePosted: "message_created", ev.MessageEdited: "message_updated",
    ev.MessageDeleted: "message_deleted", ev.ReactionAdded: "reaction_added",
    ev.ReactionRemoved: "reaction_removed",
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


async def expected_bodies(url: str, customer_id: UUID, through: int) -> list[dict[str, Any]]:
    """Every body to be published for the customer, in order (``audience`` sorted), once the
    store's reads have passed ``through`` (the position of the customer's last event)."""

    async def through_last() -> list[StoredEvent] | None:
        # A transaction still open anywhere on the server holds the reads back (tx_id < xmin).
        events = await stored_events(url, customer_id)
        return events if any(s.position == through for s in events) else None

    events = await wait_until(through_last, what="the store's reads to pass the last event")
    decoded = [s.decode() for s in events]
    chats: dict[UUID, dict] = {}
    members: dict[UUID, dict[UUID, dict]] = {}
    messages: dict[UUID, dict] = {}
    creating_tx: dict[UUID, int] = {}  # talk -> the transaction that created it
    bodies = []
    for stored, event in zip(events, decoded, strict=True):
        talk = members.setdefault(event.chat_id, {})
        if isinstance(event, (ev.ChatCreated, ev.ChatUpdated, ev.ChatDeleted,
                              ev.ParticipantJoined, ev.ParticipantLeft)):
            chats[event.chat_id] = evolve_chat_row(chats.get(event.chat_id), event, customer_id)
        left = None
        if isinstance(event, ev.ParticipantJoined):
            talk[event.participant_id] = participant_row(event, customer_id)
            data = participant_resource(talk[event.participant_id])
        elif isinstance(event, ev.ParticipantLeft):
            left = talk.pop(event.participant_id)
            data = participant_resource(left)
        elif isinstance(event, (ev.ChatCreated, ev.ChatUpdated, ev.ChatDeleted)):
            data = chat_resource(chats[event.chat_id])
        else:
            messages[event.message_id] = evolve_message_row(messages.get(event.message_id),
                                                            event, customer_id)
            data = message_resource(messages[event.message_id])
        audience = {str(row["owner_id"]) for row in talk.values()}
        if left is not None:
            audience.add(str(left["owner_id"]))
        if isinstance(event, ev.ChatCreated):  # the participants it is created with
            audience = {str(e.owner_id) for s, e in zip(events, decoded, strict=True)
                        if s.tx_id == stored.tx_id and isinstance(e, ev.ParticipantJoined)
                        and e.chat_id == event.chat_id}
            creating_tx[event.chat_id] = stored.tx_id
        if isinstance(event, ev.ParticipantJoined) and \
                creating_tx.get(event.chat_id) == stored.tx_id:
            audience = {str(event.owner_id)}  # a join of the creation: the joining agent
        bodies.append({
            "type": NAMES[type(event)], "event_id": str(stored.event_id),
            "position": stored.position, "customer_id": str(customer_id),
            "chat_id": str(event.chat_id), "audience": sorted(audience), "data": data,
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
        assert comparable(got.body) == body, body["type"]
    position = {b["event_id"]: b["position"] for b in expected}
    for chat_id in {b["chat_id"] for b in expected}:
        order = [position[r.message_id] for r in first.values() if r.body["chat_id"] == chat_id]
        want = [b["position"] for b in expected if b["chat_id"] == chat_id]
        assert order == want, f"talk {chat_id}: published out of order"
