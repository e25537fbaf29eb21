"""Running a command: load state from the streams, ``decide``, append at the versions read.

A concurrent writer makes the append fail with ``ConcurrencyConflict``; the command is then
decided again on fresh state, after a short random pause that grows with each attempt, so
racing commands are serialised per stream and none is lost. Every round of a race has a
winner, so N writers on one stream need at most N rounds; the limit is far above that.
(Within one process, commands on one stream also queue: command_api/stream_locks.py.)

Only the streams a command touches are read: a talk's stream holds its membership, each
message has its own, so a command's cost does not grow with the talk's history.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

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
from command_api.domain.errors import Conflict, DomainError
from command_api.stream_cache import Loaded
from events.catalogue import Event, chat_stream, message_stream
from events.envelope import Checkpoint, Metadata, NewEvent
from events.errors import ConcurrencyConflict
from events.store import AppendResult, EventStore, StreamAppend
from services.retry import Backoff, pause

MAX_ATTEMPTS = 64
BACKOFF_BASE = 0.001  # seconds; the pause before attempt n is random in [0, base * 2**n]
BACKOFF_CAP = 0.05


@dataclass(frozen=True, slots=True)
class CommandResponse:
    """What the HTTP layer answers: status, JSON body, and where in the global order the
    answer stands (its last event, or the head of the stream it answers from): the
    ``X-Talk-Position`` a read can wait for."""

    status: int
    body: Any
    position: Checkpoint


@dataclass(slots=True)
class Decision:
    """The outcome of ``decide`` on loaded state, ready to append."""

    appends: list[StreamAppend]
    new_events: list[Event]
    prior: list[Event] = field(default_factory=list)  # the primary stream's events before
    head_position: Checkpoint = Checkpoint()  # (tx_id, position) of the primary stream's head
    chat: ChatState | None = None
    customer_id: Any = None
    # the primary stream as loaded (``prior`` is its events): rendering folds its rows from
    # the folds cached on it, not from ``prior`` (None: rendering folds ``prior``)
    primary: Loaded | None = None


Render = Callable[[Decision, AppendResult | None], CommandResponse]
Answer = TypeVar("Answer")
Commit = Callable[[Decision, Metadata, Render], Awaitable[Answer]]


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


async def load_stream(store: EventStore, stream_id: str) -> Loaded:
    """The stream decoded, through the store's cache when it has one."""
    load = getattr(store, "load", None)
    if load is not None:
        return await load(stream_id)
    return Loaded(await store.read_stream(stream_id))


async def load_chat(store: EventStore, chat_id) -> tuple[ChatState, list[Event], Checkpoint]:
    loaded = await load_stream(store, chat_stream(chat_id))
    return loaded.folded(fold_chat), loaded.events, loaded.head_checkpoint


async def load_message(store: EventStore, message_id) -> tuple[MessageState, list[Event],
                                                               Checkpoint]:
    loaded = await load_stream(store, message_stream(message_id))
    return loaded.folded(fold_message), loaded.events, loaded.head_checkpoint


async def decide_chat_command(store: EventStore, cmd: ChatCommand) -> Decision:
    loaded = await load_stream(store, chat_stream(cmd.chat_id))
    state = loaded.folded(fold_chat)
    new_events = decide_chat(state, cmd)
    appends = group_appends(new_events, {chat_stream(cmd.chat_id): state.version})
    return Decision(appends, new_events, loaded.events, loaded.head_checkpoint, state,
                    cmd.customer_id, primary=loaded)


async def decide_message_command(store: EventStore, cmd: MessageCommand) -> Decision:
    primary: Loaded | None = None
    if isinstance(cmd, PostMessage):
        message, prior, head = MessageState(), [], 0
        chat_id = cmd.chat_id
    else:
        primary = await load_stream(store, message_stream(cmd.message_id))
        message, prior, head = (primary.folded(fold_message), primary.events,
                                primary.head_checkpoint)
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
    return Decision(appends, new_events, prior, head, chat, cmd.customer_id, primary=primary)


async def plain_commit(store: EventStore, decision: Decision, metadata: Metadata,
                       render: Render) -> CommandResponse:
    result = await store.append(decision.appends, metadata) if decision.new_events else None
    return render(decision, result)


async def run_command(decide: Callable[[EventStore], Awaitable[Decision]], commit: Commit[Answer],
                      metadata: Metadata, render: Render, store: EventStore) -> Answer:
    """Decide and commit, deciding again on a version conflict.

    With a :class:`~command_api.stream_cache.CachedEventStore`, the first decision reads the
    cache; an append validates it. A decision that appends nothing (a refusal or a no-op) is
    not validated by anything, so it is made again on fresh reads before it is answered.
    """
    fresh = getattr(store, "fresh", store)
    backoff: Backoff | None = None
    for _ in range(MAX_ATTEMPTS):
        try:
            decision = await decide(store)
        except DomainError:
            decision = await decide(fresh)  # raises the refusal if fresh state agrees
        if not decision.new_events and fresh is not store:
            decision = await decide(fresh)
        try:
            return await commit(decision, metadata, render)
        except ConcurrencyConflict as conflict:
            stale = getattr(store, "stale", None)
            if stale is not None:  # whatever path appended, the cached stream is behind
                stale(conflict.stream_id)
            if backoff is None:  # made on the first conflict only: most commands have none
                backoff = Backoff(BACKOFF_BASE, BACKOFF_CAP, jitter=1.0)
            await pause(backoff.next())
    raise Conflict("the resource is being changed by others; retry", "concurrent-change")
