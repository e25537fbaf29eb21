"""Marking a talk read: decide a :class:`MarkRead` on the talk, the caller's read marker and
the message, and answer the caller's participant.

The marker has a stream of its own (``read-<chat_id>-<agent_id>``), and the talk's stream is
not checked: posting (which only checks the talk's stream) and marking read never make each
other's append fail.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from command_api.domain import fold_chat
from command_api.domain.commands import MarkRead
from command_api.domain.message import MessageState
from command_api.domain.read import ReadMarker, decide_read, fold_read
from command_api.execution import (
    CommandResponse,
    Decision,
    group_appends,
    load_message,
    load_stream,
)
from command_api.rendering import _position as position_of
from command_api.rendering import joined_event
from events import catalogue as ev
from events.store import AppendResult, EventStore
from query_api.resources import participant_resource, participant_row


async def decide_mark_read(store: EventStore, cmd: MarkRead, seen: dict[str, Any]) -> Decision:
    """The decision; ``seen["marker"]`` gets the marker it was made on (for the answer).
    ``seen["projected"]``: the caller's marker in the read tables, which a post may have moved
    past the stream's; the later of the two is the one a read must pass."""
    talk = await load_stream(store, ev.chat_stream(cmd.chat_id))
    chat, prior, head = talk.folded(fold_chat), talk.events, talk.head_checkpoint
    marker_stream = ev.read_stream(cmd.chat_id, cmd.actor_id)
    marker: ReadMarker = (await load_stream(store, marker_stream)).folded(fold_read)
    projected = seen.get("projected")
    if projected is not None:
        message_id, tm_read, tm_create = projected
        if marker.marker is None or (tm_create, message_id) > marker.marker:
            marker = ReadMarker((tm_create, message_id), message_id, tm_read, marker.version)
    message = (await load_message(store, cmd.message_id))[0] if cmd.message_id else None
    message = message or MessageState()
    events = decide_read(chat, marker, message, cmd)
    seen["marker"] = marker
    return Decision(group_appends(events, {marker_stream: marker.version}), events,
                    prior, head, chat, cmd.customer_id, primary=talk)


def render_read(agent_id: UUID, seen: dict[str, Any]):
    """The caller's participant with its marker after the command (``seen``: as above)."""

    def render(decision: Decision, result: AppendResult | None) -> CommandResponse:
        participant_id = decision.chat.participant_id_of(agent_id)
        row: dict[str, Any] = participant_row(joined_event(decision, participant_id),
                                              decision.customer_id)
        marker = fold_read(decision.new_events, seen.get("marker") or ReadMarker())
        row.update(last_read_message_id=marker.message_id, tm_read=marker.tm_read)
        return CommandResponse(200, participant_resource(row), position_of(decision, result))

    return render
