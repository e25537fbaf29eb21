"""Moving read markers in the read tables: the one statement the live projector (per event)
and a replay (per chunk) both use, so the two always agree.

A move is (talk, agent, message, time): a ``ChatRead``, or a post by an agent (posting marks
the talk read for its author up to the new message). For each (talk, agent) the move to the
furthest message in the talk's order (``seq``) wins, the first one to reach it on a tie; it
applies only if it is past the participant's marker, so a marker never moves back, and
moves of agents who are not (or no longer) participants change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from uuid import UUID

import psycopg

Move = tuple[UUID, UUID, UUID, datetime]  # chat_id, owner_id, message_id, when

# The moves travel as four arrays written as text literals: psycopg dumps the uuids of a
# ``list[UUID]`` parameter one by one in Python, at more than the statement's own cost. A
# literal array (not a JSON document) lets the planner count the moves: with its default
# guess (100 rows) it scans the whole participants table instead of probing its index. The
# messages again, as ``m.id = ANY(...)``: they are then found through their primary key, not
# by a scan of the table that the planner may find cheaper than a few hundred probes, and
# the moves it expects are few, so it probes the participants' (chat_id, owner_id) index.
_MOVE = (
    "UPDATE {prefix}rm_participants p SET read_seq = x.seq, read_n = x.n,"
    "       last_read_message_id = x.id, tm_read = x.tm"
    "  FROM (SELECT DISTINCT ON (u.chat_id, u.owner_id) u.chat_id, u.owner_id, m.seq, m.n,"
    "               m.id, u.tm"
    "          FROM unnest(%s::uuid[], %s::uuid[], %s::uuid[], %s::timestamptz[])"
    "               WITH ORDINALITY AS u(chat_id, owner_id, message_id, tm, ord)"
    "          JOIN {prefix}rm_messages m ON m.id = u.message_id AND m.id = ANY(%s::uuid[])"
    "         ORDER BY u.chat_id, u.owner_id, m.seq DESC, u.ord) x"
    " WHERE p.chat_id = x.chat_id AND p.owner_id = x.owner_id AND x.seq > p.read_seq"
)


def move_statement(prefix: str = "") -> str:
    """``prefix``: ``"<schema>."`` for a replay's tables, ``""`` for the live views."""
    return _MOVE.format(prefix=prefix)


def move_params(moves: list[Move]) -> tuple[str, str, str, str, str]:
    messages = _literal(str(m[2]) for m in moves)
    return (_literal(str(m[0]) for m in moves), _literal(str(m[1]) for m in moves), messages,
            _literal(m[3].isoformat() for m in moves), messages)


def _literal(values: Iterable[str]) -> str:
    """An array's text literal; the values (uuids, ISO 8601 times) need no quoting."""
    return "{" + ",".join(values) + "}"


async def move_markers(conn: psycopg.AsyncConnection, moves: list[Move], prefix: str = "") -> None:
    if moves:
        await conn.execute(move_statement(prefix), move_params(moves))
