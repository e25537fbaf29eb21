"""An event stored in an older schema version, for the tests of upcasting on the write side
and in the outbox: ``ChatCreated`` as version 1 stored it (``kind`` and ``title``), the
catalogue's ``ChatCreated`` made version 2 (``type`` and ``name``) for the test, and the
upcaster between them registered in the system's registry (``events.upcasting.UPCASTERS``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar, Literal
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg.rows import dict_row

from events import catalogue as ev
from events.envelope import NewEvent
from events.store import StreamAppend
from events.upcasting import UPCASTERS
from tests.factories import metadata

CREATED_AT = datetime(2021, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)
CREATED_AT_TEXT = "2021-03-04 05:06:07.890123"  # as the API writes it


class ChatCreatedV1(ev.Event):
    """The raw version-1 payload's shape: ``kind`` and ``title``."""

    event_type: ClassVar[str] = "ChatCreated"
    schema_version: ClassVar[int] = 1

    chat_id: UUID
    customer_id: UUID
    kind: Literal["normal", "group"]
    title: str
    detail: str
    tm_create: datetime


class ChatCreatedV2(ev.ChatCreated):
    schema_version: ClassVar[int] = 2


def v1_to_v2(data: dict) -> dict:
    data["type"] = data.pop("kind")
    data["name"] = data.pop("title")
    return data


def make_chat_created_v2(monkeypatch: pytest.MonkeyPatch) -> None:
    """For one test: the catalogue's ChatCreated is version 2, with an upcaster from 1."""
    monkeypatch.setitem(UPCASTERS._catalogue, "ChatCreated", ChatCreatedV2)
    monkeypatch.setitem(UPCASTERS._steps, ("ChatCreated", 1), v1_to_v2)


async def store_old_talk(store, customer: UUID, kind: str, title: str,
                         members: list[UUID]) -> UUID:
    """A talk created as version 1 stored it, with its members joining in the same
    transaction (as a creation does); returns its id."""
    chat_id = uuid4()
    stream = ev.chat_stream(chat_id)
    created = ChatCreatedV1(chat_id=chat_id, customer_id=customer, kind=kind, title=title,
                            detail="old shape", tm_create=CREATED_AT)
    joins = [ev.ParticipantJoined(chat_id=chat_id, participant_id=uuid4(), owner_type="agent",
                                  owner_id=m, tm_joined=CREATED_AT) for m in members]
    await store.append([StreamAppend(stream, 0, tuple(
        NewEvent(stream, e) for e in [created, *joins]))], metadata(customer, members[0]))
    return chat_id


async def assert_stored_as_v1(url: str, chat_id: UUID) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        cur = await conn.execute("SELECT schema_version, data FROM events WHERE stream_id = %s"
                                 " AND type = 'ChatCreated'", (ev.chat_stream(chat_id),))
        row = await cur.fetchone()
    assert row["schema_version"] == 1
    assert {"kind", "title"} <= set(row["data"]) and not {"type", "name"} & set(row["data"])
