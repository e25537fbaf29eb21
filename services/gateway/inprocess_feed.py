"""The in-process feed: the published stream kept in memory, for ``talk up`` without
RabbitMQ. Whoever publishes (the projector, after each committed batch, on the same event
loop) calls :meth:`InProcessFeed.publish` with each message body exactly as it would be
published to the exchange; the gateway reads it through the :class:`~services.gateway.feed.Feed`
interface like the RabbitMQ stream.

Offsets count from 0 in this process; retention is the last ``retention`` messages and at
most ``retention_bytes`` of published bodies, so a resume token older than that (or from
before a restart) gets ``resync_required``.

:class:`FeedExchange` stands in for the RabbitMQ exchange: the outbox publisher's
``publish_batch(db, exchange)`` given one "publishes" straight into the feed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import structlog
from aio_pika.abc import AbstractMessage

from services.gateway.feed import Deliver, FeedMessage, FeedState, MalformedMessage

log = structlog.get_logger("talk.gateway")

DEFAULT_RETENTION = 10_000
DEFAULT_RETENTION_BYTES = 16 * 1024 * 1024


class InProcessFeed(FeedState):
    not_running = "the in-process feed is not running"

    def __init__(self, retention: int = DEFAULT_RETENTION,
                 retention_bytes: int = DEFAULT_RETENTION_BYTES) -> None:
        super().__init__()
        self._log: deque[FeedMessage] = deque()
        self._retention = retention
        self._retention_bytes = retention_bytes
        self._bytes = 0
        self._next_offset = 0
        self._deliver: Deliver | None = None
        self._appended = asyncio.Event()

    def publish(self, body: dict[str, Any], message_id: str | None = None,
                size: int | None = None) -> None:
        """Append one published message (the body of DESIGN's "Published stream"; ``size``:
        its bytes as published, measured if not given) and hand it to the gateway. Never
        waits."""
        if size is None:
            size = len(orjson.dumps(body))
        try:
            msg = FeedMessage.from_body(self._next_offset, body, message_id, size)
        except MalformedMessage as exc:
            log.error("gateway.malformed_message", error=str(exc))
            return
        self._next_offset += 1
        self._log.append(msg)
        self._bytes += size
        while len(self._log) > 1 and (len(self._log) > self._retention
                                      or self._bytes > self._retention_bytes):
            self._bytes -= self._log.popleft().size
        self._position = msg.offset
        if self._deliver is not None:
            self._deliver(msg)
        self._appended.set()
        self._appended = asyncio.Event()

    async def run(self, deliver: Deliver, stop: asyncio.Event) -> None:
        self._deliver = deliver
        self._ready.set()
        try:
            await stop.wait()
        finally:
            self._ready.clear()
            self._deliver = None

    @asynccontextmanager
    async def replay(self, start: int) -> AsyncIterator[AsyncIterator[FeedMessage]]:
        yield self._read_from(start)

    async def _read_from(self, start: int) -> AsyncIterator[FeedMessage]:
        offset = start
        while True:
            first = self._log[0].offset if self._log else self._next_offset
            offset = max(offset, first)
            if offset < self._next_offset:
                msg = self._log[offset - first]
                offset += 1
                yield msg
            else:
                await self._appended.wait()


class FeedExchange:
    """Quacks like the aio-pika exchange the publisher publishes to, and hands each message
    to an :class:`InProcessFeed` instead (the body as published, its ``message_id``)."""

    def __init__(self, feed: InProcessFeed) -> None:
        self.feed = feed

    async def publish(self, message: AbstractMessage, routing_key: str, **_: object) -> None:
        self.feed.publish(orjson.loads(message.body), message.message_id, len(message.body))
