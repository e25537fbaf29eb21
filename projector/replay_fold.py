"""The pure part of a replay: which read rows a chunk of events touches, and the rows it
leaves behind, folded in memory with the query API's row folds (no I/O here).

A row a chunk touches but does not create must be loaded first (it was written by an
earlier chunk); every row the chunk touches is then written once, as it stands after the
chunk. The folds are the ones the command API answers with and the outbox publishes, so
the rows equal what the live projector's per-event SQL makes — `talk projections verify`
checks exactly that.

This runs once per event of the whole history, so it dispatches on ``event_type`` (an
``isinstance`` against pydantic models costs ten times more) and keys rows by the ids'
integer value (``UUID.__hash__`` is Python code).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from events.catalogue import Event, types_changing
from projector.read_markers import Move
from query_api.resources import (
    evolve_chat_row,
    evolve_message_row,
    evolve_parent_row,
    participant_row,
)

Row = dict[str, Any]

# From the catalogue's ``rows`` of each event.
CHAT_ROW_EVENTS = types_changing("talk")
MESSAGE_EVENTS = types_changing("message")
# The events that create and remove participant rows (a read only moves a marker).
PARTICIPANT_EVENTS = frozenset({"ParticipantJoined", "ParticipantLeft"})


@dataclass(slots=True)
class Touched:
    """What a chunk needs from the tables before it can be folded."""

    chats_to_load: list[UUID] = field(default_factory=list)
    messages_to_load: list[UUID] = field(default_factory=list)
    participants_to_delete: list[UUID] = field(default_factory=list)  # left, joined earlier


@dataclass(slots=True)
class ChunkRows:
    """The rows a chunk touches, by ``id.int``; None where the chunk leaves no row. ``moves``:
    the read-marker moves (:mod:`projector.read_markers`), applied once the rows are written."""

    chats: dict[int, Row | None] = field(default_factory=dict)
    participants: dict[int, Row | None] = field(default_factory=dict)
    messages: dict[int, Row | None] = field(default_factory=dict)
    moves: list[Move] = field(default_factory=list)


def touched(events: Iterable[Event]) -> Touched:
    """Rows whose first event in the chunk does not create them."""
    out = Touched()
    chats: set[int] = set()
    messages: set[int] = set()
    participants: set[int] = set()
    for event in events:
        kind = event.event_type
        if kind in MESSAGE_EVENTS:
            key = event.message_id.int
            if key not in messages:
                messages.add(key)
                if kind != "MessagePosted":
                    out.messages_to_load.append(event.message_id)
            if kind == "MessagePosted" and event.parent_id is not None:  # its thread's parent
                parent = event.parent_id.int
                if parent not in messages:
                    messages.add(parent)
                    out.messages_to_load.append(event.parent_id)
        if kind in CHAT_ROW_EVENTS:
            key = event.chat_id.int
            if key not in chats:
                chats.add(key)
                if kind != "ChatCreated":
                    out.chats_to_load.append(event.chat_id)
        if kind in PARTICIPANT_EVENTS:
            key = event.participant_id.int
            if key not in participants:
                participants.add(key)
                if kind == "ParticipantLeft":
                    out.participants_to_delete.append(event.participant_id)
    return out


def fold(events: Iterable[tuple[Event, UUID]], chats: Mapping[int, Row],
         messages: Mapping[int, Row]) -> ChunkRows:
    """The rows after the chunk; ``chats`` and ``messages`` are the loaded rows."""
    out = ChunkRows(chats=dict(chats), messages=dict(messages))
    out_chats, out_messages, out_participants = out.chats, out.messages, out.participants
    moves = out.moves
    for event, customer_id in events:
        kind = event.event_type
        if kind in CHAT_ROW_EVENTS:
            key = event.chat_id.int
            out_chats[key] = evolve_chat_row(out_chats.get(key), event, customer_id)
        if kind in MESSAGE_EVENTS:
            key = event.message_id.int
            row = out_messages[key] = evolve_message_row(out_messages.get(key), event,
                                                         customer_id)
            if kind == "MessagePosted":
                chat = out_chats.get(event.chat_id.int)
                if row is not None and chat is not None:  # its place in the talk
                    row["seq"], row["n"] = chat["message_seq"], chat["normal_count"]
                if event.parent_id is not None:
                    parent = event.parent_id.int
                    out_messages[parent] = evolve_parent_row(out_messages.get(parent), event)
                if event.owner_type == "agent":
                    moves.append((event.chat_id, event.owner_id, event.message_id,
                                  event.tm_create))
        elif kind == "ParticipantJoined":
            out_participants[event.participant_id.int] = participant_row(
                event, customer_id, out_chats.get(event.chat_id.int))
        elif kind == "ParticipantLeft":
            out_participants[event.participant_id.int] = None
        elif kind == "ChatRead":
            moves.append((event.chat_id, event.owner_id, event.message_id, event.tm_read))
    return out
