"""One WebSocket connection: who it is, what it subscribed to, and its bounded send buffer.

Frames are queued and written by a writer task that exists only while frames are pending
(an idle socket holds no task). Writing does not wait while the socket's transport accepts
data; when the client reads too slowly the transport pauses, frames pile up in the buffer,
and once more than ``limit`` bytes are pending the socket is closed with
:data:`SLOW_CLIENT_CLOSE` and counted in ``talk_gateway_dropped_slow_clients_total``. No
other socket waits for it: delivery to a socket never awaits anything.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import TYPE_CHECKING

import orjson
import structlog
from aiohttp import WSMsgType, web

from services.gateway.limits import TokenBucket
from services.gateway.metrics import DROPPED_SLOW_CLIENTS, FRAMES_SENT

if TYPE_CHECKING:
    from services.gateway.feed import FeedMessage
    from services.gateway.replay import Replay
    from services.gateway.tokens import ResumeTokens

log = structlog.get_logger("talk.gateway")

SLOW_CLIENT_CLOSE = 4008  # the send buffer overflowed: the client reads too slowly
GOING_AWAY_CLOSE = 1001  # the gateway shuts down
TOO_MANY_SOCKETS_CLOSE = 4029  # the agent already holds the maximum of sockets here
CLOSE_TIMEOUT = 5.0  # seconds for the closing handshake before the TCP link is aborted
ROOM_TIMEOUT = 30.0  # seconds a replay waits for a client to read before dropping it


class Connection:
    """A socket's state. ``topics`` maps each live topic to the offset after which it
    receives events (offsets at or before it were delivered by a replay, or precede the
    subscription); topics being replayed live in ``replay`` until it catches up."""

    __slots__ = ("ws", "transport", "customer_id", "agent_id", "agent_topic", "topics",
                 "replay", "limit", "closing", "expires_at", "refused", "checks", "_pending",
                 "_pending_bytes", "_writer", "_room", "_closer")

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None,
                 customer_id: str, agent_id: str, limit: int) -> None:
        self.ws = ws
        self.transport = transport
        self.customer_id = customer_id
        self.agent_id = agent_id
        self.agent_topic = f"agent:{agent_id}"
        self.topics: dict[str, int] = {}
        self.replay: Replay | None = None
        self.limit = limit
        self.closing = False
        self.expires_at: float | None = None  # the token's exp; the hub closes it then
        self.refused = 0  # topics refused so far: they count toward the topic limit
        self.checks = TokenBucket()  # membership checks it may still make
        self._pending: deque[bytes] | None = None
        self._pending_bytes = 0
        self._writer: asyncio.Task | None = None
        self._room: asyncio.Event | None = None
        self._closer: asyncio.Task | None = None

    # --- which topic an event reaches this socket on ----------------------------------

    def may_see(self, msg: FeedMessage) -> bool:
        return msg.customer_id == self.customer_id and self.agent_id in msg.audience

    def live_topic(self, msg: FeedMessage) -> str | None:
        """The live topic ``msg`` is delivered on, or ``None`` (audience not checked)."""
        topics = self.topics
        since = topics.get(msg.chat_topic)
        if since is not None and msg.offset > since:
            return msg.chat_topic
        since = topics.get(self.agent_topic)
        if since is not None and msg.offset > since:
            return self.agent_topic
        return None

    # --- sending ----------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        """Queue a frame; never waits. Overflowing the buffer closes the socket."""
        if self.closing:
            return
        size = len(frame)
        if self._pending_bytes + size > self.limit and self._pending_bytes:
            self._overflow()
            return
        if self._pending is None:
            self._pending = deque()
        self._pending.append(frame)
        self._pending_bytes += size
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())

    def send_json(self, payload: dict) -> None:
        self.send(orjson.dumps(payload))

    def send_event(self, msg: FeedMessage, topic: str, tokens: ResumeTokens) -> None:
        self.send(msg.frame(topic, tokens))

    def held_topics(self) -> int:
        """Topics counted toward the per-socket limit: live, being replayed, refused."""
        replaying = len(self.replay.topics) if self.replay is not None else 0
        return len(self.topics) + replaying + self.refused

    async def wait_for_room(self, timeout: float = ROOM_TIMEOUT) -> None:
        """Wait until at most half the buffer is pending (a replay's flow control). A client
        that reads nothing for ``timeout`` seconds meanwhile is closed as a slow client."""
        while not self.closing and self._pending_bytes > self.limit // 2:
            if self._room is None:
                self._room = asyncio.Event()
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), timeout)
            except TimeoutError:
                self._overflow()

    async def _write(self) -> None:
        sent = 0
        try:
            pending = self._pending
            while pending and not self.closing:
                frame = pending.popleft()
                self._pending_bytes -= len(frame)
                # Room as soon as the level drops, not once the write returns: the write
                # may wait for the transport to drain while the replay could fill up.
                if self._room is not None and self._pending_bytes <= self.limit // 2:
                    self._room.set()
                await self.ws.send_frame(frame, WSMsgType.TEXT)
                sent += 1
        except (ConnectionError, RuntimeError):  # the peer went away; the handler cleans up
            self._stop_sending()
        finally:
            FRAMES_SENT.inc(sent)
            self._writer = None
            if self._pending is not None and not self._pending:
                self._pending = None

    def _stop_sending(self) -> None:
        self.closing = True
        self._pending = None
        self._pending_bytes = 0
        if self._room is not None:
            self._room.set()

    def _overflow(self) -> None:
        DROPPED_SLOW_CLIENTS.inc()
        log.warning("gateway.slow_client_dropped", agent_id=self.agent_id,
                    pending_bytes=self._pending_bytes, limit=self.limit)
        self.start_close(SLOW_CLIENT_CLOSE, b"send buffer overflow")

    # --- closing ----------------------------------------------------------------------

    def detach(self) -> None:
        """The socket is gone: drop what is pending and stop its tasks."""
        self._stop_sending()
        if self._writer is not None:
            self._writer.cancel()
        if self.replay is not None and self.replay.task is not None:
            self.replay.task.cancel()

    def start_close(self, code: int, message: bytes) -> asyncio.Task:
        """Stop sending and close the socket in the background (once)."""
        self._stop_sending()
        if self._writer is not None:
            self._writer.cancel()
        if self._closer is None:
            self._closer = asyncio.create_task(self._close(code, message))
        return self._closer

    async def _close(self, code: int, message: bytes) -> None:
        """Send the close frame and wait for the client's; a client that does not read it
        within :data:`CLOSE_TIMEOUT` has its TCP connection aborted (what is still buffered
        for it, the close frame included, is discarded)."""
        if self.transport is not None:
            # However ws.close() ends: cancelling a writer that waits on the transport's drain
            # cancels aiohttp's shared drain waiter too, and ws.close() then ends at once in
            # CancelledError after a graceful transport close, which waits for the client to
            # read everything (forever, for one that reads nothing). A no-op once it is gone.
            asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, self.transport.abort)
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=message), CLOSE_TIMEOUT)
        except (TimeoutError, ConnectionError, RuntimeError):
            if self.transport is not None:
                self.transport.abort()  # a plain close would wait for the buffer to drain
