"""What a command answers: the resource as it stands after the command (the same shape the
query API serves), computed from the events without waiting for the projection."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from command_api.execution import CommandResponse, Decision
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


def render_chat(decision: Decision, result: AppendResult | None) -> CommandResponse:
    row: dict[str, Any] | None = None
    for event in [*decision.prior, *decision.new_events]:
        row = evolve_chat_row(row, event, decision.customer_id)
    return CommandResponse(200, chat_resource(row), _position(decision, result))


def message_row_of(decision: Decision, message_id: UUID) -> dict[str, Any] | None:
    row = None
    for event in [*decision.prior, *decision.new_events]:
        if getattr(event, "message_id", None) == message_id:
            row = evolve_message_row(row, event, decision.customer_id)
    return row


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
        joined = [e for e in decision.prior
                  if isinstance(e, ev.ParticipantJoined) and e.participant_id == participant_id]
        row = participant_row(joined[-1], decision.customer_id)
        return CommandResponse(200, participant_resource(row), _position(decision, result))

    return render
