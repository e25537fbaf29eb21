"""Running a command: load state from the streams, ``decide``, append at the versions read.

A concurrent writer makes the append fail with ``ConcurrencyConflict``; the command is then
decided again on fresh state (a few times), so racing commands are serialised per stream and
none is lost. Only the streams a command touches are read: a talk's stream holds its
membership, each message has its own, so a command's cost does not grow with the talk's
history.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from command_api.domain import (
    ChatCommand,
    ChatState,
    MessageCommand,
    MessageState,
    decide_chat,
    decide_message,
    fold_chat,
    fold_message,
    stream_of,
)
from command_api.domain.commands import PostMessage
from command_api.domain.errors import Conflict
from events.catalogue import Event, chat_stream, message_stream
from events.envelope import Metadata, NewEvent, StoredEvent
from events.errors import ConcurrencyConflict
from events.store import AppendResult, EventStore, StreamAppend

MAX_ATTEMPTS = 8


@dataclass(frozen=True, slots=True)
class CommandResponse:
    """What the HTTP layer answers: status, JSON body, and the position to report."""

    status: int
    body: Any
    position: int


@dataclass(slots=True)
class Decision:
    """The outcome of ``decide`` on loaded state, ready to append."""

    appends: list[StreamAppend]
    new_events: list[Event]
    prior: list[Event] = field(default_factory=list)  # the primary stream's events before
    head_position: int = 0  # position of the primary stream's last stored event
    chat: ChatState | None = None
    customer_id: Any = None


Render = Callable[[Decision, AppendResult | None], CommandResponse]
Commit = Callable[[Decision, Metadata, Render], Awaitable[CommandResponse]]


def group_appends(events: Sequence[Event], versions: dict[str, int],
                  checks: dict[str, int] | None = None) -> list[StreamAppend]:
    """Events grouped by stream, in order; a stream not in ``versions`` must be new."""
    by_stream: dict[str, list[NewEvent]] = {}
    for event in events:
        stream = stream_of(event)
        by_stream.setdefault(stream, []).append(NewEvent(stream, event))
    appends = [StreamAppend(s, versions.get(s, 0), tuple(evs)) for s, evs in by_stream.items()]
    for stream, version in (checks or {}).items():
        if stream not in by_stream:
            appends.append(StreamAppend(stream, version, ()))
    return appends


def decoded(stored: Sequence[StoredEvent]) -> list[Event]:
    return [s.decode() for s in stored]


async def load_chat(store: EventStore, chat_id) -> tuple[ChatState, list[Event], int]:
    stored = await store.read_stream(chat_stream(chat_id))
    events = decoded(stored)
    return fold_chat(events), events, (stored[-1].position if stored else 0)


async def load_message(store: EventStore, message_id) -> tuple[MessageState, list[Event], int]:
    stored = await store.read_stream(message_stream(message_id))
    events = decoded(stored)
    return fold_message(events), events, (stored[-1].position if stored else 0)


async def decide_chat_command(store: EventStore, cmd: ChatCommand) -> Decision:
    state, prior, head = await load_chat(store, cmd.chat_id)
    new_events = decide_chat(state, cmd)
    appends = group_appends(new_events, {chat_stream(cmd.chat_id): state.version})
    return Decision(appends, new_events, prior, head, state, cmd.customer_id)


async def decide_message_command(store: EventStore, cmd: MessageCommand) -> Decision:
    if isinstance(cmd, PostMessage):
        message, prior, head = MessageState(), [], 0
        chat_id = cmd.chat_id
    else:
        message, prior, head = await load_message(store, cmd.message_id)
        chat_id = message.chat_id
    chat = (await load_chat(store, chat_id))[0] if chat_id else ChatState()
    parent = None
    if isinstance(cmd, PostMessage) and cmd.parent_id is not None:
        parent = (await load_message(store, cmd.parent_id))[0]
    new_events = decide_message(chat, message, cmd, parent)
    versions = {} if isinstance(cmd, PostMessage) else {message_stream(cmd.message_id): message.version}
    # The talk must not change under a write into it: a post racing with the sender's
    # removal lands before it or is decided again (and refused).
    checks = {chat_stream(chat_id): chat.version} if new_events and chat_id else {}
    appends = group_appends(new_events, versions, checks)
    return Decision(appends, new_events, prior, head, chat, cmd.customer_id)


async def plain_commit(store: EventStore, decision: Decision, metadata: Metadata,
                       render: Render) -> CommandResponse:
    result = await store.append(decision.appends, metadata) if decision.new_events else None
    return render(decision, result)


async def run_command(decide: Callable[[], Awaitable[Decision]], commit: Commit,
                      metadata: Metadata, render: Render) -> CommandResponse:
    """Decide and commit, deciding again on a version conflict."""
    for attempt in range(MAX_ATTEMPTS):
        decision = await decide()
        try:
            return await commit(decision, metadata, render)
        except ConcurrencyConflict:
            await asyncio.sleep(random.uniform(0, 0.002 * (attempt + 1)))
    raise Conflict("the resource is being changed by others; retry")
