"""The read tables as a rebuild from the whole history would make them, folded in memory
with the pure row functions, and a comparison with the live tables."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from events import catalogue as ev
from events.envelope import START
from events.postgres_store import read_all_on
from query_api.resources import evolve_chat_row, evolve_message_row, participant_row


async def fold_history(url: str) -> dict[str, dict[Any, dict]]:
    chats: dict[Any, dict] = {}
    participants: dict[Any, dict] = {}
    messages: dict[Any, dict] = {}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        checkpoint = START
        while True:
            batch = await read_all_on(conn, checkpoint, 5000)
            if not batch:
                break
            for stored in batch:
                event = stored.decode()
                customer = stored.customer_id
                if isinstance(event, (ev.ChatCreated, ev.ChatUpdated, ev.ChatDeleted,
                                      ev.ParticipantJoined, ev.ParticipantLeft)):
                    chats[event.chat_id] = evolve_chat_row(chats.get(event.chat_id), event, customer)
                if isinstance(event, ev.ParticipantJoined):
                    participants[event.participant_id] = participant_row(event, customer)
                elif isinstance(event, ev.ParticipantLeft):
                    participants.pop(event.participant_id, None)
                elif hasattr(event, "message_id"):
                    messages[event.message_id] = evolve_message_row(
                        messages.get(event.message_id), event, customer)
            checkpoint = batch[-1].checkpoint
    return {"rm_chats": chats, "rm_participants": participants, "rm_messages": messages}


async def live_tables(url: str) -> dict[str, dict[Any, dict]]:
    out: dict[str, dict[Any, dict]] = {}
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        for table in ("rm_chats", "rm_participants", "rm_messages"):
            cur = await conn.execute(f"SELECT * FROM {table}")
            out[table] = {row["id"]: dict(row) for row in await cur.fetchall()}
    return out


async def assert_read_tables_match_history(url: str) -> None:
    expected = await fold_history(url)
    actual = await live_tables(url)
    for table, rows in expected.items():
        assert set(actual[table]) == set(rows), f"{table}: different rows"
        for key, row in rows.items():
            live = actual[table][key]
            for column, value in row.items():
                assert live[column] == value, f"{table} {key} {column}: {live[column]!r} != {value!r}"
