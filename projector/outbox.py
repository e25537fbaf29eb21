"""The outbox: each projected event, as it will be published, written in the projector's batch
transaction (so an event is in the outbox exactly when its read-table writes are committed).

Per event it computes ``data`` (the resource as the query API shows it after the event) and
``audience`` (the agents of the talk after it) in memory: :meth:`Outbox.before_batch` loads
the read rows the batch touches as they stand before it, then :meth:`Outbox.after_batch`
folds the batch's events over them in order with the query API's own pure row folds and
inserts the rows. The fold itself (:func:`outbox_rows`) does no I/O.

Audience rules: the participants after the event; for ``participant_left`` the one who left
too (so their client learns it); for ``chat_created`` the participants the talk is created
with (the joins committed in the same transaction: after the bare ``ChatCreated`` the talk
has none yet, and nobody would be told). When a batch ends inside a creating transaction,
the rest of its joins are read from the store. A ``participant_joined`` of the creating
transaction goes to the joining agent alone: the others learn the members from
``chat_created``, and N joins each told to every member would publish N x N agent ids. So a
talk created with N members publishes O(N) bytes. A batch that starts inside a creating
transaction reads that transaction's id from the store (the talk's first event).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import orjson
import psycopg
import structlog

from events import catalogue as ev
from events.envelope import StoredEvent
from events.postgres_store import row_to_event
from projector import published
from query_api.resources import (
    chat_resource,
    evolve_chat_row,
    evolve_message_row,
    evolve_parent_row,
    message_resource,
    participant_resource,
    participant_row,
)

log = structlog.get_logger("talk.outbox")

Row = dict[str, Any]

# The events whose ``data`` is the Talk (from the catalogue).
CHAT_EVENTS = tuple(cls for cls in ev.EVENT_CLASSES if cls.resource == "Talk")


@dataclass(frozen=True, slots=True)
class OutboxRow:
    message_id: UUID
    position: int
    customer_id: UUID
    chat_id: UUID
    routing_key: str
    body: dict[str, Any]


@dataclass(slots=True)
class ReadState:
    """The read rows a batch touches, as they stand before it (then folded forward)."""

    chats: dict[UUID, Row] = field(default_factory=dict)
    members: dict[UUID, dict[UUID, Row]] = field(default_factory=dict)  # chat -> participant -> row
    messages: dict[UUID, Row] = field(default_factory=dict)
    # chat -> agents joining in its creating transaction, when the batch ends inside it
    created_with: dict[UUID, list[UUID]] = field(default_factory=dict)
    # chat -> the transaction that created it (for the chats whose joins the batch holds)
    creating_tx: dict[UUID, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Needed:
    """Which rows a batch needs loaded: everything it touches that it does not create."""

    chat_rows: list[UUID]
    member_chats: list[UUID]
    message_rows: list[UUID]
    creating_tx: int | None  # a talk-creating transaction the batch ends inside of
    # talks joined in the batch's first transaction (which may have begun in the batch
    # before) and not created in this batch: is that transaction the one creating them?
    joined_first_tx: list[UUID] = field(default_factory=list)


def needed_rows(events: Sequence[StoredEvent], decoded: Sequence[ev.Event]) -> Needed:
    created_chats = {e.chat_id for e in decoded if isinstance(e, ev.ChatCreated)}
    posted = {e.message_id for e in decoded if isinstance(e, ev.MessagePosted)}
    chat_rows = {e.chat_id for e in decoded
                 if isinstance(e, CHAT_EVENTS) and not isinstance(e, ev.ChatCreated)}
    member_chats = {e.chat_id for e in decoded}
    messages = {e.message_id for e in decoded
                if hasattr(e, "message_id") and not isinstance(e, (ev.MessagePosted, ev.ChatRead))}
    last_tx = events[-1].tx_id if events else None
    creating_tx = last_tx if any(
        isinstance(e, ev.ChatCreated) and s.tx_id == last_tx
        for s, e in zip(events, decoded, strict=True)) else None
    first_tx = events[0].tx_id if events else None
    joined_first_tx = {e.chat_id for s, e in zip(events, decoded, strict=True)
                       if s.tx_id == first_tx and isinstance(e, ev.ParticipantJoined)}
    return Needed(sorted(chat_rows - created_chats), sorted(member_chats - created_chats),
                  sorted(messages - posted), creating_tx,
                  sorted(joined_first_tx - created_chats))


def outbox_rows(events: Sequence[StoredEvent], decoded: Sequence[ev.Event],
                state: ReadState) -> list[OutboxRow]:
    """Fold the batch over ``state`` (mutated) and return its outbox rows, in order."""
    rows: list[OutboxRow] = []
    for i, (stored, event) in enumerate(zip(events, decoded, strict=True)):
        customer_id = stored.customer_id
        chat_id = event.chat_id
        members = state.members.setdefault(chat_id, {})
        audience = None
        if isinstance(event, CHAT_EVENTS):
            row = evolve_chat_row(state.chats.get(chat_id), event, customer_id)
            state.chats[chat_id] = row
            data = chat_resource(row) if row is not None else None
            if isinstance(event, ev.ChatCreated):
                audience = state.created_with.get(chat_id) or _created_with(events, decoded, i)
                state.creating_tx[chat_id] = stored.tx_id
        elif isinstance(event, ev.ParticipantJoined):
            _evolve_loaded_chat(state, event, customer_id)
            member = participant_row(event, customer_id)
            members[event.participant_id] = member
            data = participant_resource(member)
            if state.creating_tx.get(chat_id) == stored.tx_id:
                audience = [event.owner_id]
        elif isinstance(event, ev.ParticipantLeft):
            _evolve_loaded_chat(state, event, customer_id)
            member = members.pop(event.participant_id, None) or participant_row(event, customer_id)
            data = participant_resource(member)
            audience = [*_owners(members), event.owner_id]
        elif isinstance(event, ev.ChatRead):  # to the reader alone (their other devices)
            member = dict(members.get(event.participant_id) or participant_row(event, customer_id))
            member.update(last_read_message_id=event.message_id, tm_read=event.tm_read)
            if event.participant_id in members:
                members[event.participant_id] = member
            data = participant_resource(member)
            audience = [event.owner_id]
        else:
            row = evolve_message_row(state.messages.get(event.message_id), event, customer_id)
            state.messages[event.message_id] = row
            data = message_resource(row) if row is not None else None
            if isinstance(event, ev.MessagePosted) and event.parent_id in state.messages:
                # a later event of this batch on the parent publishes its new thread summary
                state.messages[event.parent_id] = evolve_parent_row(
                    state.messages[event.parent_id], event)
        if data is None:
            # The read tables lack what the event changes: skipping it would lose a message
            # for good, so fail the batch (it rolls back; the projector reports and retries).
            raise RuntimeError(f"no resource to publish for {stored.type} {stored.event_id}"
                               f" at position {stored.position}")
        name = published.EVENT_NAMES[stored.type]
        message = published.body(stored, name, chat_id,
                                 _owners(members) if audience is None else audience, data)
        rows.append(OutboxRow(stored.event_id, stored.position, customer_id, chat_id,
                              published.routing_key(customer_id, chat_id, name), message))
    return rows


def _owners(members: dict[UUID, Row]) -> list[UUID]:
    return [row["owner_id"] for row in members.values()]


def _evolve_loaded_chat(state: ReadState, event: ev.Event, customer_id: UUID) -> None:
    # Only a loaded (or created) talk row needs its member_count kept: no other is published.
    if event.chat_id in state.chats:
        state.chats[event.chat_id] = evolve_chat_row(state.chats[event.chat_id], event, customer_id)


def _created_with(events: Sequence[StoredEvent], decoded: Sequence[ev.Event], i: int) -> list[UUID]:
    """The agents joining in the transaction that created the talk of ``decoded[i]`` (one
    this batch holds whole)."""
    tx_id, chat_id = events[i].tx_id, decoded[i].chat_id
    agents = []
    for j in range(i + 1, len(events)):
        if events[j].tx_id != tx_id:  # a transaction's events are contiguous in the order
            break
        e = decoded[j]
        if isinstance(e, ev.ParticipantJoined) and e.chat_id == chat_id:
            agents.append(e.owner_id)
    return agents


# --- SQL ------------------------------------------------------------------------------------

# The rows travel as one JSON document (one text parameter: escaping JSON bodies inside a
# text[] parameter costs more than the rest of the outbox); ``->`` on ``json`` keeps the
# body's text as written.
_INSERT = (
    "INSERT INTO outbox (partition, message_id, position, customer_id, chat_id, routing_key,"
    " body)"
    " SELECT %s, (r->>'m')::uuid, (r->>'p')::bigint, (r->>'cu')::uuid, (r->>'ch')::uuid,"
    "        r->>'rk', r->'b'"
    " FROM json_array_elements(%s::json) WITH ORDINALITY AS x(r, ord)"
    " ORDER BY ord"
)


_CHATS = "SELECT * FROM rm_chats WHERE id = ANY(%s)"
_MEMBERS = "SELECT * FROM rm_participants WHERE chat_id = ANY(%s) ORDER BY tm_joined, id"
_MESSAGES = "SELECT * FROM rm_messages WHERE id = ANY(%s)"
_CREATING_TXS = (
    "SELECT stream_id, tx_id::text::bigint AS tx_id FROM events"
    " WHERE stream_id = ANY(%s) AND version = 1"
)
_JOINS_IN_TX = (
    "SELECT position, tx_id::text::bigint AS tx_id, event_id, stream_id, version, type,"
    " schema_version, data, metadata, recorded_at FROM events"
    " WHERE tx_id = %s::text::xid8 AND type = 'ParticipantJoined' ORDER BY position"
)


async def load_state(conn: psycopg.AsyncConnection, needed: Needed) -> ReadState:
    """The rows ``needed``, read in one round trip (the queries are pipelined)."""
    queries = [(sql, params) for sql, params, wanted in (
        (_CHATS, (needed.chat_rows,), needed.chat_rows),
        (_MEMBERS, (needed.member_chats,), needed.member_chats),
        (_MESSAGES, (needed.message_rows,), needed.message_rows),
        (_JOINS_IN_TX, (str(needed.creating_tx),), needed.creating_tx is not None),
        (_CREATING_TXS, ([ev.chat_stream(c) for c in needed.joined_first_tx],),
         needed.joined_first_tx),
    ) if wanted]
    results: dict[str, list[Row]] = {}
    async with conn.pipeline():
        cursors = [(sql, await conn.execute(sql, params)) for sql, params in queries]
        for sql, cur in cursors:
            results[sql] = await cur.fetchall()
    state = ReadState()
    state.chats = {row["id"]: row for row in results.get(_CHATS, [])}
    for row in results.get(_MEMBERS, []):
        state.members.setdefault(row["chat_id"], {})[row["id"]] = row
    state.messages = {row["id"]: row for row in results.get(_MESSAGES, [])}
    for row in results.get(_CREATING_TXS, []):
        state.creating_tx[UUID(row["stream_id"].removeprefix("chat-"))] = row["tx_id"]
    for row in results.get(_JOINS_IN_TX, []):
        joined = row_to_event(row).decode()
        state.created_with.setdefault(joined.chat_id, []).append(joined.owner_id)
    return state


async def insert_rows(conn: psycopg.AsyncConnection, rows: Sequence[OutboxRow],
                      partition: int = 0) -> None:
    """Insert ``rows`` into the outbox of ``partition``, in order."""
    if rows:
        document = [{"m": r.message_id, "p": r.position, "cu": r.customer_id, "ch": r.chat_id,
                     "rk": r.routing_key, "b": r.body} for r in rows]
        await conn.execute(_INSERT, (partition, orjson.dumps(document).decode()))


class Outbox:
    """The projector's batch hooks: ``before_batch`` (in the batch transaction, before the
    read-table writes) loads the rows the batch touches; ``after_batch`` (after them, in
    pipeline mode: it only writes) inserts the batch's outbox rows."""

    def __init__(self, partition: int = 0) -> None:
        self.partition = partition  # whose outbox the rows go to (the projector's partition)
        self._pending: tuple[Sequence[StoredEvent], list[ev.Event], ReadState] | None = None

    async def before_batch(self, conn: psycopg.AsyncConnection, events: Sequence[StoredEvent]) -> None:
        decoded = [stored.decode() for stored in events]
        self._pending = (events, decoded, await load_state(conn, needed_rows(events, decoded)))

    async def after_batch(self, conn: psycopg.AsyncConnection, events: Sequence[StoredEvent]) -> None:
        if self._pending is None or self._pending[0] is not events:
            raise RuntimeError("Outbox.after_batch without before_batch for the same batch")
        _, decoded, state = self._pending
        self._pending = None
        await insert_rows(conn, outbox_rows(events, decoded, state), self.partition)
