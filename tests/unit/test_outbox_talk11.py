"""What the outbox publishes for Talk 1.1's events: ``chat_closed`` and ``chat_reopened``
carry the talk with its status to its participants; ``chat_read`` carries the reader's
participant with the new marker, to the reader alone."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from events import catalogue as ev
from events.envelope import StoredEvent
from projector.asyncapi import BODY_MODELS
from projector.outbox import ReadState, outbox_rows

CUSTOMER, CHAT = uuid4(), uuid4()
ALICE, BOB = uuid4(), uuid4()
NOW = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def stored(position: int, event: ev.Event) -> StoredEvent:
    return StoredEvent(position, 100 + position, uuid4(), ev.stream_of(event), 1,
                       event.event_type, event.schema_version, event.model_dump(mode="json"),
                       {"customer_id": str(CUSTOMER)}, NOW)


def member(owner: UUID) -> dict:
    return {"id": uuid4(), "customer_id": CUSTOMER, "chat_id": CHAT, "owner_type": "agent",
            "owner_id": owner, "tm_joined": NOW, "read_seq": 0, "read_n": 0,
            "last_read_message_id": None, "tm_read": None}


def test_lifecycle_events_go_to_the_participants_and_reads_to_the_reader():
    talk = {"id": CHAT, "customer_id": CUSTOMER, "type": "group", "name": "", "detail": "",
            "member_count": 2, "tm_create": NOW, "tm_update": NOW, "tm_delete": None,
            "status": "active", "message_seq": 3, "normal_count": 2, "last_message_id": None,
            "tm_last_message": None}
    alice, bob = member(ALICE), member(BOB)
    state = ReadState(chats={CHAT: talk}, members={CHAT: {alice["id"]: alice, bob["id"]: bob}})
    message = uuid4()
    events = [
        ev.ChatClosed(chat_id=CHAT, reason="closed", tm_close=NOW),
        ev.ChatRead(chat_id=CHAT, participant_id=bob["id"], owner_type="agent", owner_id=BOB,
                    message_id=message, message_tm_create=NOW, tm_read=NOW),
        ev.ChatReopened(chat_id=CHAT, tm_reopen=NOW),
    ]
    batch = [stored(i + 1, e) for i, e in enumerate(events)]
    closed, read, reopened = outbox_rows(batch, events, state)

    assert closed.routing_key == f"{CUSTOMER}.{CHAT}.chat_closed"
    assert closed.body["data"]["status"] == "closed"
    assert set(closed.body["audience"]) == {str(ALICE), str(BOB)}
    assert read.routing_key == f"{CUSTOMER}.{CHAT}.chat_read"
    assert read.body["audience"] == [str(BOB)]
    assert read.body["data"]["last_read_message_id"] == str(message)
    assert read.body["data"]["id"] == str(bob["id"]) and read.body["data"]["tm_read"]
    assert reopened.body["data"]["status"] == "active"
    assert set(reopened.body["audience"]) == {str(ALICE), str(BOB)}
    for row in (closed, read, reopened):  # as the AsyncAPI document describes them
        BODY_MODELS[row.body["type"]].model_validate(row.body)
