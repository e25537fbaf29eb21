"""The read tables as a rebuild from the whole history would make them, folded in memory
with the pure row functions, and a comparison with the live tables."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from events.envelope import START
from events.postgres_store import read_all_on
from projector.replay_fold import fold


async def fold_history(url: str) -> dict[str, dict[Any, dict]]:
    """The whole history folded as one replay chunk (``projector.replay_fold.fold``), its
    read-marker moves applied in memory as ``projector.read_markers`` applies them."""
    events = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        checkpoint = START
        while True:
            batch = await read_all_on(conn, checkpoint, 5000)
            if not batch:
                break
            events += [(stored.decode(), stored.customer_id) for stored in batch]
            checkpoint = batch[-1].checkpoint
    rows = fold(events, {}, {})
    messages = {row["id"]: row for row in rows.messages.values() if row is not None}
    participants = {row["id"]: row for row in rows.participants.values() if row is not None}
    furthest: dict[tuple, tuple] = {}
    for chat_id, owner_id, message_id, when in rows.moves:
        seq = messages[message_id]["seq"]
        if (chat_id, owner_id) not in furthest or seq > furthest[(chat_id, owner_id)][0]:
            furthest[(chat_id, owner_id)] = (seq, message_id, when)
    for row in participants.values():
        move = furthest.get((row["chat_id"], row["owner_id"]))
        if move is not None and move[0] > row["read_seq"]:
            message = messages[move[1]]
            row.update(read_seq=message["seq"], read_n=message["n"],
                       last_read_message_id=message["id"], tm_read=move[2])
    return {"rm_chats": {r["id"]: r for r in rows.chats.values() if r is not None},
            "rm_participants": participants, "rm_messages": messages}


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
