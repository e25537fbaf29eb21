"""The live projector's batch, set-based: the rows a batch touches are loaded (one pipelined
round trip), the batch's events are folded over them in memory with the replay's fold
(:mod:`projector.replay_fold`, itself the query API's row folds), and each read table is
written once per batch from one JSON document, whatever the number of events:

- ``rm_chats`` and ``rm_messages``: the rows the batch creates in one ``INSERT`` (a row
  that exists already fails it, as the per-event ``INSERT`` did), the loaded rows it
  changes in one ``UPDATE``;
- ``rm_participants``: the rows of members who left (and joined before the batch) in one
  ``DELETE``, those who joined in one ``INSERT``; then the read markers move in one
  statement (:mod:`projector.read_markers`), after the messages they point at are written.

The rows equal what the per-event statements of :mod:`projector.read_model` make (the
replay writes the same folds, and ``talk projections verify`` compares the two). Everything
goes through the ``rm_*`` views, as the per-event statements do, so a rebuild's switch
(which locks the views) orders with a batch as before.

This runs in the projector's batch transaction in pipeline mode: the load syncs the
pipeline once (it reads); the writes are only sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import orjson
import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads

from events.envelope import StoredEvent
from projector.read_markers import Move, move_markers
from projector.read_schema import CHATS, MESSAGES, PARTICIPANTS, Table
from projector.replay_fold import ChunkRows, Row, Touched, fold, touched


def _select(table: Table) -> str:
    return f"SELECT {', '.join(table.columns)} FROM {table.name} WHERE id = ANY(%s::uuid[])"


def _insert(table: Table) -> str:
    columns = ", ".join(table.columns)
    return (f"INSERT INTO {table.name} ({columns}) SELECT {columns}"
            f" FROM json_populate_recordset(NULL::{table.name}, %s::json)")


def _update(table: Table) -> str:
    # The ids again as an array: the planner counts them (it takes a JSON document for 100
    # rows) and finds the rows through the primary key, never by scanning the table.
    assignments = ", ".join(f"{c} = r.{c}" for c in table.columns if c != "id")
    return (f"UPDATE {table.name} t SET {assignments}"
            f" FROM json_populate_recordset(NULL::{table.name}, %s::json) r"
            " WHERE t.id = r.id AND t.id = ANY(%s::uuid[])")


_SELECT_CHATS, _SELECT_MESSAGES = _select(CHATS), _select(MESSAGES)
_INSERT_CHATS, _UPDATE_CHATS = _insert(CHATS), _update(CHATS)
_INSERT_MESSAGES, _UPDATE_MESSAGES = _insert(MESSAGES), _update(MESSAGES)
_INSERT_PARTICIPANTS = _insert(PARTICIPANTS)
_DELETE_PARTICIPANTS = f"DELETE FROM {PARTICIPANTS.name} WHERE id = ANY(%s::uuid[])"


def _ids(ids: list[UUID]) -> str:
    """An array of uuids as its text literal (psycopg dumps a ``list[UUID]`` parameter
    value by value in Python, at several times the cost)."""
    return "{" + ",".join(map(str, ids)) + "}"


async def apply_batch(conn: psycopg.AsyncConnection, events: Sequence[StoredEvent]) -> None:
    """Apply ``events``, in order, to the read tables (in the caller's transaction)."""
    decoded = [(stored.decode(), stored.customer_id) for stored in events]
    need = touched(event for event, _ in decoded)
    chats, messages = await load_rows(conn, need)
    await write_rows(conn, fold(decoded, chats, messages), chats, messages,
                     need.participants_to_delete)


async def load_rows(conn: psycopg.AsyncConnection,
                    need: Touched) -> tuple[dict[int, Row], dict[int, Row]]:
    """The existing talk and message rows the batch changes but does not create, by
    ``id.int``, in one round trip (none when the batch creates all it touches)."""
    queries = [(sql, ids) for sql, ids in ((_SELECT_CHATS, need.chats_to_load),
                                           (_SELECT_MESSAGES, need.messages_to_load)) if ids]
    if not queries:
        return {}, {}
    results: dict[str, dict[int, Row]] = {}
    async with conn.pipeline():
        cursors = []
        for sql, ids in queries:
            cur = conn.cursor(row_factory=dict_row)
            set_json_loads(orjson.loads, cur)
            cursors.append((sql, await cur.execute(sql, (_ids(ids),))))
        for sql, cur in cursors:
            results[sql] = {row["id"].int: row for row in await cur.fetchall()}
    return results.get(_SELECT_CHATS, {}), results.get(_SELECT_MESSAGES, {})


async def write_rows(conn: psycopg.AsyncConnection, rows: ChunkRows, loaded_chats: dict[int, Row],
                     loaded_messages: dict[int, Row], left: list[UUID]) -> None:
    """Each table written once: rows created by the batch inserted, loaded rows updated."""
    for new, loaded, insert, update in (
            (rows.chats, loaded_chats, _INSERT_CHATS, _UPDATE_CHATS),
            (rows.messages, loaded_messages, _INSERT_MESSAGES, _UPDATE_MESSAGES)):
        created, changed = [], []
        for key, row in new.items():
            if row is not None:
                (changed if key in loaded else created).append(row)
        await _write(conn, insert, created)
        await _write(conn, update, changed, _ids([row["id"] for row in changed]))
    if left:
        await conn.execute(_DELETE_PARTICIPANTS, (_ids(left),))
    await _write(conn, _INSERT_PARTICIPANTS,
                 [row for row in rows.participants.values() if row is not None])
    await move_markers(conn, furthest_moves(rows.moves, rows.messages))


def furthest_moves(moves: list[Move], messages: dict[int, Row | None]) -> list[Move]:
    """``moves`` without those the marker statement would pass over: of the moves of one
    (talk, agent) to messages whose place (``seq``) the batch knows (rows it wrote), only the
    first to the furthest stays; moves to other messages all stay, in order. An agent's
    posts each move their marker, so most moves go."""
    best: dict[tuple[int, int], tuple[int, int]] = {}  # (talk, agent) -> (seq, index)
    unknown: list[int] = []
    for i, move in enumerate(moves):
        row = messages.get(move[2].int)
        if row is None:
            unknown.append(i)
            continue
        key = (move[0].int, move[1].int)
        kept = best.get(key)
        if kept is None or row["seq"] > kept[0]:
            best[key] = (row["seq"], i)
    if len(best) + len(unknown) == len(moves):
        return moves
    return [moves[i] for i in sorted(unknown + [i for _, i in best.values()])]


async def _write(conn: psycopg.AsyncConnection, statement: str, rows: list[Row],
                 *more: str) -> None:
    # One JSON document (one text parameter): orjson writes uuids, datetimes and the jsonb
    # columns' lists natively, and the server parses it once.
    if rows:
        await conn.execute(statement, (orjson.dumps(rows).decode(), *more))
