"""What a command answers: the resource as it stands after the command (the same shape the
query API serves), computed from the events without waiting for the projection.

The rows are folded incrementally: a decision's primary stream (``Decision.primary``) keeps
its row folds with its other folds (command_api/stream_cache.py), so an answer folds the
command's new events onto the row of the stream as loaded, never the stream's whole history
(a talk after 1,000 joins and leaves, a message after 50 reactions). A decision without it
folds ``prior``, as before.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from command_api.execution import CommandResponse, Decision
from command_api.stream_cache import Loaded
from events import catalogue as ev
from events.envelope import Checkpoint
from events.store import AppendResult
from query_api.resources import (
    chat_resource,
    evolve_chat_row,
    evolve_message_row,
    message_resource,
    participant_resource,
    participant_row,
)


def _position(decision: Decision, result: AppendResult | None) -> Checkpoint:
    return result.checkpoint if result and result.positions else decision.head_position


# --- Row folds: ``fold(events)`` or ``fold(events, state)`` (kept on a Loaded stream) ----------


def fold_chat_row(events: list[ev.Event], row: dict[str, Any] | None = None,
                  ) -> dict[str, Any] | None:
    """The talk's row (its tenant is its own: ``evolve_chat_row`` reads it from the event)."""
    for event in events:
        row = evolve_chat_row(row, event, None)
    return row


def fold_message_row(events: list[ev.Event], row: dict[str, Any] | None = None,
                     ) -> dict[str, Any] | None:
    """A message's row from its own stream, its ``customer_id`` left to the answer."""
    for event in events:
        row = evolve_message_row(row, event, None)
    return row


def fold_joins(events: list[ev.Event], joins: dict[UUID, ev.ParticipantJoined] | None = None,
               ) -> dict[UUID, ev.ParticipantJoined]:
    """Each participant's (last) join, by participant id."""
    grown: dict[UUID, ev.ParticipantJoined] | None = None
    for event in events:
        if isinstance(event, ev.ParticipantJoined):
            grown = dict(joins or {}) if grown is None else grown
            grown[event.participant_id] = event
    return grown if grown is not None else (joins or {})


def _primary_of(decision: Decision, stream_id: str) -> Loaded | None:
    """The decision's primary stream if it is ``stream_id`` (its folds then stand for
    ``prior``)."""
    loaded = decision.primary
    if loaded is None or (loaded.stored and loaded.stored[0].stream_id != stream_id):
        return None
    return loaded


def chat_row_of(decision: Decision) -> dict[str, Any] | None:
    primary = decision.primary
    row = primary.folded(fold_chat_row) if primary is not None else fold_chat_row(decision.prior)
    return fold_chat_row(decision.new_events, row)


def render_chat(decision: Decision, result: AppendResult | None) -> CommandResponse:
    return CommandResponse(200, chat_resource(chat_row_of(decision)), _position(decision, result))


def message_row_of(decision: Decision, message_id: UUID) -> dict[str, Any] | None:
    primary = _primary_of(decision, ev.message_stream(message_id))
    if primary is not None:
        row = primary.folded(fold_message_row)
        if row is not None:
            row = {**row, "customer_id": decision.customer_id}
        events = decision.new_events
    else:
        row, events = None, [*decision.prior, *decision.new_events]
    for event in events:
        if getattr(event, "message_id", None) == message_id:
            row = evolve_message_row(row, event, decision.customer_id)
    return row


def joined_event(decision: Decision, participant_id: UUID | None) -> ev.ParticipantJoined | None:
    """The (last) join of ``participant_id`` in the decision's talk stream before the command."""
    primary = decision.primary
    joins = primary.folded(fold_joins) if primary is not None else fold_joins(decision.prior)
    return joins.get(participant_id) if participant_id is not None else None


def render_message(message_id: UUID, thread: dict[str, Any] | None = None):
    """The message after the command; ``thread``: its thread summary from the read tables
    (``query_api.threads``), which its own stream does not hold (a new message has none)."""
    def render(decision: Decision, result: AppendResult | None) -> CommandResponse:
        row = message_row_of(decision, message_id)
        if row is not None and thread:
            row = {**row, **thread}
        return CommandResponse(200, message_resource(row), _position(decision, result))

    return render


def render_joined(decision: Decision, result: AppendResult | None) -> CommandResponse:
    joined = next(e for e in decision.new_events if isinstance(e, ev.ParticipantJoined))
    return CommandResponse(200, participant_resource(participant_row(joined, decision.customer_id)),
                           _position(decision, result))


def render_left(participant_id: UUID):
    def render(decision: Decision, result: AppendResult | None) -> CommandResponse:
        row = participant_row(joined_event(decision, participant_id), decision.customer_id)
        return CommandResponse(200, participant_resource(row), _position(decision, result))

    return render
