"""Which stream each domain event is appended to."""

from __future__ import annotations

from command_api.domain.chat import CHAT_EVENTS
from command_api.domain.message import MESSAGE_EVENTS
from events.catalogue import Event, chat_stream, message_stream


def stream_of(event: Event) -> str:
    """``chat-<id>`` for the talk's own events, ``message-<id>`` for a message's (including
    the system messages a join or leave posts)."""
    if isinstance(event, CHAT_EVENTS):
        return chat_stream(event.chat_id)  # type: ignore[attr-defined]
    if isinstance(event, MESSAGE_EVENTS):
        return message_stream(event.message_id)  # type: ignore[attr-defined]
    raise TypeError(f"no stream for {type(event).__name__}")
