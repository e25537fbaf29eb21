"""A talk as it was at a moment, and every version of a message, folded from the history.

The fold uses the functions the system itself uses: ``evolve_chat``/``evolve_message``
(``command_api.domain``) for membership and message state, and the row folds of
``query_api.resources`` for the resources the query API serves; events are upcast on read
(``StoredEvent.decode``). So the state at a moment equals what the query API showed then.

A moment is a position or a time:

- position ``P``: every event at or before the event at position ``P`` in the global order
  ``(tx_id, position)`` (what the projection had applied once it reached ``P``; position 0 is
  before the first event);
- time ``T`` (the API format ``YYYY-MM-DD HH:MM:SS.ffffff`` or ISO 8601, UTC unless it says
  otherwise): every event recorded at or before ``T``.

Only committed events count, read below the xmin barrier like every reader of the global
order; the answer first waits until no transaction older than the last one of the talk's
history up to the moment is still in flight, so it includes what was committed and asking
again later gives the same answer (for a time, a transaction that started before it and is
still in flight when asked is not included).

A talk's history is its chat stream and the stream of every message posted into it, found
through the partial index ``events_messages_by_chat``; rows are streamed through a
server-side cursor and folded one by one (memory grows with the talk, not its history).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg

from command_api.domain import (
    ChatState,
    MessageState,
    evolve_chat,
    evolve_message,
)
from command_api.domain.chat import CHAT_EVENTS
from command_api.domain.message import MESSAGE_EVENTS
from command_api.domain.read import READ_EVENTS
from events import catalogue as ev
from events.envelope import StoredEvent
from events.position_token import parse_position
from events.postgres_store import _COLUMNS, row_to_event
from events.upcasting import UPCASTERS, Upcasters
from query_api.resources import (
    chat_resource,
    evolve_chat_row,
    evolve_message_row,
    evolve_parent_row,
    message_resource,
    participant_resource,
    participant_row,
)
from services.db import Database
from services.timefmt import format_ts

ITERSIZE = 1000


# --- moments -------------------------------------------------------------------------------


class BadMoment(ValueError):
    """Neither a position nor a timestamp."""


class NoSuchPosition(LookupError):
    """No committed event holds that position."""

    def __init__(self, position: int) -> None:
        super().__init__(f"no committed event has position {position}")
        self.position = position


class NotFinalYet(RuntimeError):
    """The history up to that moment is committed, but a transaction older than its last one
    is still in flight: it may still change. Ask again in a moment."""

    def __init__(self, moment: Moment) -> None:
        super().__init__(f"the history up to {moment.describe()} is not final yet (an earlier "
                         "transaction is still in flight); retry shortly")
        self.moment = moment


@dataclass(frozen=True, slots=True)
class AtPosition:
    position: int

    def to_json(self) -> dict[str, Any]:
        return {"position": self.position}

    def describe(self) -> str:
        return f"position {self.position}"


@dataclass(frozen=True, slots=True)
class AtTime:
    time: datetime  # timezone-aware

    def to_json(self) -> dict[str, Any]:
        return {"time": format_ts(self.time)}

    def describe(self) -> str:
        return format_ts(self.time)


Moment = AtPosition | AtTime


def parse_moment(text: str) -> Moment:
    """A position (digits: an event's ``position``, or an ``X-Talk-Position``, which names
    its event's) or a timestamp (the API format or ISO 8601; UTC if no offset)."""
    text = text.strip()
    if text.isascii() and text.isdigit():
        try:
            return AtPosition(parse_position(text).position)
        except ValueError as exc:
            raise BadMoment(f"{text[:50]!r} is not a position: {exc}") from None
    try:
        moment = datetime.fromisoformat(text)
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadMoment(f"{text!r} is neither a position nor a timestamp "
                        "(YYYY-MM-DD HH:MM:SS.ffffff UTC, or ISO 8601)") from None
    return AtTime(moment)


# --- the pure folds ------------------------------------------------------------------------


@dataclass
class _Message:
    state: MessageState = field(default_factory=MessageState)
    row: dict[str, Any] | None = None
    edits: int = 0


class TalkFold:
    """Folds a talk's events, in the global order, into its state."""

    def __init__(self, upcasters: Upcasters = UPCASTERS) -> None:
        self.upcasters = upcasters
        self.chat = ChatState()
        self.chat_row: dict[str, Any] | None = None
        self.joined: dict[UUID, dict[str, Any]] = {}  # participant id -> participant row
        self.messages: dict[UUID, _Message] = {}
        self.seq: dict[UUID, int] = {}  # each message's place in the talk (the read tables')
        self.last: StoredEvent | None = None

    def apply(self, stored: StoredEvent) -> None:
        event = stored.decode(self.upcasters)
        customer = stored.customer_id
        if isinstance(event, CHAT_EVENTS):
            self.chat = evolve_chat(self.chat, event)
            self.chat_row = evolve_chat_row(self.chat_row, event, customer)
            if isinstance(event, ev.ParticipantJoined):
                self.joined[event.participant_id] = participant_row(event, customer)
                self.joined[event.participant_id]["read_seq"] = len(self.seq)
        elif isinstance(event, READ_EVENTS):
            self._move_marker(event.owner_id, event.message_id, event.tm_read)
        elif isinstance(event, MESSAGE_EVENTS):
            message = self.messages.setdefault(event.message_id, _Message())
            message.state = evolve_message(message.state, event)
            message.row = evolve_message_row(message.row, event, customer)
            message.edits += isinstance(event, ev.MessageEdited)
            if isinstance(event, ev.MessagePosted):
                self.seq.setdefault(event.message_id, len(self.seq) + 1)
                parent = self.messages.get(event.parent_id) if event.parent_id else None
                if parent is not None:  # the thread's summary
                    parent.row = evolve_parent_row(parent.row, event)
                if event.owner_type == "agent":  # posting marks it read for the author
                    self._move_marker(event.owner_id, event.message_id, event.tm_create)
        self.last = stored

    def _move_marker(self, owner_id: UUID, message_id: UUID, when: Any) -> None:
        """As the read tables move it (projector/read_markers.py): forward only."""
        participant_id = self.chat.participant_id_of(owner_id)
        row = self.joined.get(participant_id) if participant_id else None
        seq = self.seq.get(message_id, 0)
        if row is not None and seq > row.get("read_seq", 0):
            row.update(read_seq=seq, last_read_message_id=message_id, tm_read=when)

    def state(self, moment: Moment) -> dict[str, Any] | None:
        """The talk at the moment, or None if it did not exist yet."""
        if self.chat_row is None or not self.chat.exists:
            return None
        participants = [self.joined[pid] for _, pid in self.chat.participants]
        participants.sort(key=lambda r: (r["tm_joined"], r["id"]), reverse=True)
        messages = [m for m in self.messages.values() if m.row is not None]
        messages.sort(key=lambda m: (m.row["tm_create"], m.row["id"]), reverse=True)
        return {
            "at": moment.to_json(),
            "last_event": _event_ref(self.last),
            "talk": chat_resource(self.chat_row),
            "participants": [participant_resource(r) for r in participants],
            "messages": [audited_message(m.row, m.edits) for m in messages],
        }


def audited_message(row: dict[str, Any], edits: int) -> dict[str, Any]:
    """The Message resource with its edit state: ``edited`` and ``versions`` (how many texts
    it has had: the posted one plus one per edit)."""
    return {**message_resource(row), "edited": edits > 0, "versions": 1 + edits}


def _event_ref(stored: StoredEvent | None) -> dict[str, Any] | None:
    if stored is None:
        return None
    return {"position": stored.position, "recorded_at": format_ts(stored.recorded_at)}


def message_history(events: Iterable[StoredEvent], upcasters: Upcasters = UPCASTERS
                    ) -> list[dict[str, Any]]:
    """Every version of a message: one entry per event of its stream, oldest first, each
    with who did it, when, where in the global order, and the message as it stood after."""
    state, row, edits = MessageState(), None, 0
    out = []
    for stored in events:
        event = stored.decode(upcasters)
        state = evolve_message(state, event)
        row = evolve_message_row(row, event, stored.customer_id)
        edits += isinstance(event, ev.MessageEdited)
        actor = stored.metadata.get("actor") or {}
        out.append({
            "version": stored.version,
            "position": stored.position,
            "event_id": str(stored.event_id),
            "event_type": stored.type,
            "actor": {"type": actor.get("type"), "id": actor.get("id")},
            "request_id": stored.metadata.get("request_id"),
            "recorded_at": format_ts(stored.recorded_at),
            "change": event.model_dump(mode="json"),
            "message": audited_message(row, edits) if row is not None else None,
            "deleted": state.deleted,
        })
    return out


# --- reading the history -------------------------------------------------------------------


_CHAT_CREATED = f"SELECT {_COLUMNS} FROM events WHERE stream_id = %s AND version = 1"

_POSITION = "SELECT tx_id::text AS tx_id FROM events WHERE position = %s"

_TALK_STREAMS = (
    "array_append(ARRAY(SELECT stream_id FROM events WHERE type = 'MessagePosted'"
    " AND data->>'chat_id' = %(chat_id)s) || ARRAY(SELECT DISTINCT stream_id FROM events"
    " WHERE type = 'ChatRead' AND data->>'chat_id' = %(chat_id)s), %(chat_stream)s)"
)

# Whether every transaction up to the last one in the selection is over (so the selection
# can no longer change).
_FINAL = f"""
SELECT coalesce(max(tx_id) < pg_snapshot_xmin(pg_current_snapshot()), true) AS final
  FROM events WHERE stream_id = ANY ({_TALK_STREAMS}) AND {{moment}}
"""

# The talk's streams through their index; the barrier only filters what they hold (OFFSET 0
# keeps the planner from scanning the global-order index for it).
_TALK_EVENTS = f"""
SELECT * FROM (
    SELECT {_COLUMNS}, tx_id AS xid FROM events
     WHERE stream_id = ANY ({_TALK_STREAMS}) AND {{moment}} OFFSET 0) AS talk
 WHERE xid < pg_snapshot_xmin(pg_current_snapshot())
 ORDER BY xid, position
"""

# One stream in version order needs no barrier: versions are given out under the stream
# row's lock, so a transaction still in flight can only add after the last one.
_MESSAGE_EVENTS = f"SELECT {_COLUMNS} FROM events WHERE stream_id = %s ORDER BY version"

FINALITY_POLL = 0.05  # seconds between looks while waiting for the history to be final

async def talk_customer(db: Database, chat_id: UUID) -> UUID | None:
    """The customer a talk belongs to (from its ChatCreated), or None if there is no such talk."""
    async with db.statement("audit_talk_customer") as conn:
        cur = await conn.execute(_CHAT_CREATED, (ev.chat_stream(chat_id),))
        row = await cur.fetchone()
    event = row_to_event(row).decode() if row else None
    return event.customer_id if isinstance(event, ev.ChatCreated) else None


async def talk_state(db: Database, chat_id: UUID, moment: Moment, *, wait: float = 2.0,
                     upcasters: Upcasters = UPCASTERS) -> dict[str, Any] | None:
    """The talk at ``moment`` (None if it did not exist then).

    Reads only below the xmin barrier, as every reader of the global order does; and first
    waits (up to ``wait`` seconds, then NotFinalYet) until every transaction up to the last
    one of the talk's history at that moment is over, so that what is committed is included
    and the answer no longer changes. An unknown position raises NoSuchPosition."""
    params: dict[str, Any] = {"chat_id": str(chat_id), "chat_stream": ev.chat_stream(chat_id)}
    condition = await _moment_condition(db, moment, params)
    await _wait_until_final(db, condition, params, wait, moment)
    fold = TalkFold(upcasters)
    async with db.transaction("audit_talk_state") as conn:
        async for stored in _events(conn, "audit_talk_events",
                                    _TALK_EVENTS.format(moment=condition), params):
            fold.apply(stored)
    return fold.state(moment)


async def message_events(db: Database, message_id: UUID) -> list[StoredEvent]:
    """The message's stream, oldest first (committed events only)."""
    async with db.statement("audit_message_events") as conn:
        cur = await conn.execute(_MESSAGE_EVENTS, (ev.message_stream(message_id),))
        return [row_to_event(r) for r in await cur.fetchall()]


async def _moment_condition(db: Database, moment: Moment, params: dict[str, Any]) -> str:
    """The SQL condition of the events up to ``moment``; fills its ``params``."""
    if isinstance(moment, AtTime):
        params["at_time"] = moment.time
        return "recorded_at <= %(at_time)s"
    if moment.position == 0:
        return "false"
    async with db.statement("audit_position") as conn:
        cur = await conn.execute(_POSITION, (moment.position,))
        row = await cur.fetchone()
    if row is None:
        raise NoSuchPosition(moment.position)
    params.update(at_tx=row["tx_id"], at_pos=moment.position)
    return "(tx_id, position) <= (%(at_tx)s::xid8, %(at_pos)s)"


async def _wait_until_final(db: Database, condition: str, params: dict[str, Any], wait: float,
                            moment: Moment) -> None:
    deadline = time.monotonic() + wait
    while True:
        async with db.statement("audit_history_final") as conn:
            cur = await conn.execute(_FINAL.format(moment=condition), params)
            row = await cur.fetchone()
        if row["final"]:
            return
        if time.monotonic() >= deadline:
            raise NotFinalYet(moment)
        await asyncio.sleep(FINALITY_POLL)


async def _events(conn: psycopg.AsyncConnection, name: str, sql: str,
                  params: dict[str, Any]) -> AsyncIterator[StoredEvent]:
    async with conn.cursor(name=name) as cur:
        cur.itersize = ITERSIZE
        await cur.execute(sql, params)
        async for row in cur:
            yield row_to_event(row)
