"""Resuming a socket from a resume token: every event it missed, in order, once, then live.

0. Check: a token that is not genuine (see :mod:`services.gateway.tokens`) never gets here:
   ``resync_required`` at once. One whose offset is past the live feed's position waits
   (without a replay slot) at most :data:`FUTURE_GRACE` for the live feed to get there
   (another gateway may be a little ahead of this one), else ``resync_required``. Then the
   resume queues for a replay slot (:class:`services.gateway.limits.ReplaySlots`).
1. Locate: read the stream from :data:`LOOKBACK` offsets before the token's offset and find
   the token's own event there (same offset, same ``message_id`` tag). The ids read on the
   way seed the duplicate filter. If the stream's first retained message is already past
   that offset, or the event there is another one, or the stream goes quiet for
   ``locate_timeout`` before reaching it (a token from a recreated stream), the events
   cannot be replayed: one ``resync_required`` frame, then live.
2. Catch up: deliver each later message the socket may see on a replayed topic (unless a
   live topic of the socket carries it), waiting for room in the socket's buffer.
3. Join live: after a message at or past the live feed's position, the replayed topics go
   live from that offset on. Replay and live dispatch run on one event loop and each step is
   synchronous, so every offset is delivered exactly once: by the replay up to the switch,
   by the live feed after it.

Offsets in a stream are not contiguous (the broker interleaves bookkeeping entries), so the
check is "is the token's own event still there", never arithmetic on offsets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import structlog

from services.gateway.connections import Connection
from services.gateway.dedupe import RecentIds
from services.gateway.feed import FeedMessage
from services.gateway.hub import Hub
from services.gateway.metrics import REPLAYS
from services.gateway.tokens import ResumePoint, message_tag

log = structlog.get_logger("talk.gateway")

LOOKBACK = 512  # offsets read before the token's to catch republished duplicates
REPLAY_DEDUPE_CAPACITY = 8_192
FUTURE_GRACE = 1.0  # seconds a token past the live position may wait for the live feed
FUTURE_POLL = 0.02


@dataclass(slots=True, eq=False)
class Replay:
    """A resume in progress: the topics it replays (not yet live on the socket)."""

    topics: set[str]
    task: asyncio.Task | None = field(default=None)


def start_replay(hub: Hub, conn: Connection, topics: set[str], point: ResumePoint) -> Replay:
    replay = Replay(set(topics))
    conn.replay = replay
    replay.task = asyncio.create_task(_run(hub, conn, replay, point), name="gateway-replay")
    return replay


async def _run(hub: Hub, conn: Connection, replay: Replay, point: ResumePoint) -> None:
    outcome = "failed"
    try:
        if not await _live_reaches(hub, point.offset):
            _resync(hub, conn, replay)
            outcome = "future"
            return
        async with hub.replay_slots.hold(conn.customer_id, conn.agent_id):
            await hub.feed.ready.wait()
            outcome = await _replay(hub, conn, replay, point)
    except asyncio.CancelledError:
        outcome = "cancelled"
        raise
    except Exception as exc:  # the broker went away mid-replay: the client must resync
        log.warning("gateway.replay_failed", error=f"{type(exc).__name__}: {exc}")
        _resync(hub, conn, replay)
    finally:
        REPLAYS.labels(outcome).inc()
        if conn.replay is replay:
            conn.replay = None


async def _live_reaches(hub: Hub, offset: int) -> bool:
    """Whether the live feed is at or past ``offset`` (waiting up to :data:`FUTURE_GRACE`),
    or has not read anything yet (nothing to compare with: the replay's locate decides)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + FUTURE_GRACE
    while True:
        position = hub.position
        if position is None or position >= offset:
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(FUTURE_POLL)


async def _replay(hub: Hub, conn: Connection, replay: Replay, point: ResumePoint) -> str:
    recent = RecentIds(REPLAY_DEDUPE_CAPACITY)
    async with hub.feed.replay(max(0, point.offset - LOOKBACK)) as stream:
        if not await _locate(stream, point, recent, hub.locate_timeout):
            _resync(hub, conn, replay)
            return "resync"
        if _caught_up(hub, conn, replay, point.offset):
            return "caught_up"
        async for msg in stream:
            if conn.closing:
                return "closed"
            if recent.seen(msg.message_id):
                continue
            topic = _replay_topic(conn, replay, msg)
            if topic is not None:
                await conn.wait_for_room()
                conn.send_event(msg, topic, hub.tokens)
                msg.drop_frames()
            if _caught_up(hub, conn, replay, msg.offset):
                return "caught_up"
    return "ended"


async def _locate(stream: AsyncIterator[FeedMessage], point: ResumePoint, recent: RecentIds,
                  idle_timeout: float) -> bool:
    """Read up to the token's offset; whether the token's own event is there."""
    while True:
        try:
            msg = await asyncio.wait_for(anext(stream), idle_timeout)
        except (TimeoutError, StopAsyncIteration):
            return False  # the stream ends before the token's offset: not this stream's token
        recent.seen(msg.message_id)
        if msg.offset < point.offset:
            continue
        return msg.offset == point.offset and message_tag(msg.message_id) == point.tag


def _replay_topic(conn: Connection, replay: Replay, msg: FeedMessage) -> str | None:
    if not conn.may_see(msg) or conn.live_topic(msg) is not None:
        return None  # not for this agent, or a live topic of the socket carries it
    if msg.chat_topic in replay.topics:
        return msg.chat_topic
    if conn.agent_topic in replay.topics:
        return conn.agent_topic
    return None


def _caught_up(hub: Hub, conn: Connection, replay: Replay, offset: int) -> bool:
    """Join live once the replay has reached the live feed's position."""
    position = hub.position
    if position is None or offset < position:
        return False
    _go_live(conn, replay, offset)
    return True


def resync_now(hub: Hub, conn: Connection, topics: set[str]) -> None:
    """A token that cannot be replayed from: ``resync_required``, then live."""
    REPLAYS.labels("not_genuine").inc()
    _resync(hub, conn, Replay(set(topics)))


def _resync(hub: Hub, conn: Connection, replay: Replay) -> None:
    conn.send_json({"type": "resync_required"})
    position = hub.position
    _go_live(conn, replay, -1 if position is None else position)


def _go_live(conn: Connection, replay: Replay, since: int) -> None:
    for topic in replay.topics:
        conn.topics.setdefault(topic, since)
    replay.topics.clear()
    if conn.replay is replay:
        conn.replay = None
