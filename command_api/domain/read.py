"""The read-marker aggregate (stream ``read-<chat_id>-<agent_id>``): one agent's marker in
one talk, ``evolve_read`` and ``decide_read``.

Markers are ordered by the marked message's ``(tm_create, id)``, the order the API lists
messages in; the marker never moves back: reading a message at or before it records nothing.
(Posting also moves the author's marker, in the read tables; that needs no event here.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from command_api.domain.chat import ChatState, require_chat, require_participant
from command_api.domain.commands import MarkRead
from command_api.domain.errors import NotFound
from command_api.domain.message import MessageState
from events.catalogue import ChatRead, Event, events_on

READ_EVENTS: tuple[type[Event], ...] = events_on("read")


@dataclass(frozen=True, slots=True)
class ReadMarker:
    """``marker``: the ``(tm_create, id)`` of the last message read, or None."""

    marker: tuple[datetime, UUID] | None = None
    message_id: UUID | None = None
    tm_read: datetime | None = None
    version: int = 0


def evolve_read(state: ReadMarker, event: Event) -> ReadMarker:
    """Fold one event (others are ignored); the marker only moves forward."""
    if not isinstance(event, READ_EVENTS):
        return state
    state = replace(state, version=state.version + 1)
    key = (event.message_tm_create, event.message_id)
    if state.marker is None or key > state.marker:
        return replace(state, marker=key, message_id=event.message_id, tm_read=event.tm_read)
    return state


def fold_read(events: Iterable[Event], state: ReadMarker | None = None) -> ReadMarker:
    state = state or ReadMarker()
    for event in events:
        state = evolve_read(state, event)
    return state


def decide_read(chat: ChatState, marker: ReadMarker, message: MessageState,
                cmd: MarkRead) -> list[Event]:
    """A ChatRead if ``message`` is past the marker; nothing
    if it is not. 404 for another customer's talk, 403 for a non-participant, 404
    (``message-not-found``) for a message of another talk. Reading works in a closed talk too."""
    require_chat(chat, cmd.customer_id, cmd.chat_id)
    require_participant(chat, cmd.actor_id, "mark it read")
    if cmd.message_id is None:
        return []  # no message to read yet
    if (not message.exists or message.message_id != cmd.message_id
            or message.chat_id != cmd.chat_id or message.tm_create is None):
        # a well-formed id naming no message of this talk: 404, as for a path's id
        raise NotFound("message_id is not a message of this talk", "message-not-found")
    key = (message.tm_create, cmd.message_id)
    if marker.marker is not None and key <= marker.marker:
        return []
    participant_id = chat.participant_id_of(cmd.actor_id)
    return [ChatRead(chat_id=cmd.chat_id, participant_id=participant_id, owner_type="agent",
                     owner_id=cmd.actor_id, message_id=cmd.message_id,
                     message_tm_create=message.tm_create, tm_read=cmd.now)]
