"""The RabbitMQ feed: the stream queue (``settings.stream_queue``, bound to
``settings.exchange``) read with ``x-stream-offset`` consumers.

Each gateway process consumes the stream on its own (no competing consumers): the live
consumer attaches at ``next`` and, after a lost connection, re-attaches right after the last
offset it handed on (or, if none arrived yet, at the chunk timestamp one second before it
first attached), so connected sockets miss nothing across a broker restart. A resume opens a
consumer of its own, on its own channel, from an offset. Stream consumers need manual
acknowledgement and a prefetch (``basic.qos``); acks only return credit, so they go out in
batches (``multiple``).

If the stream queue does not exist yet it is declared as the publisher declares it
(:func:`services.amqp.ensure_topology`); an existing queue is used as it is (passive
declare), whatever its retention arguments. With several nodes in ``TALK_AMQP_URL`` the feed
connects to the first that answers and, after a lost connection, to the next one
(:class:`services.amqp.BrokerNodes`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta

import aiormq
import structlog
from aio_pika.abc import AbstractConnection
from aiormq.abc import DeliveredMessage

from services.amqp import BrokerNodes, ensure_topology
from services.gateway.feed import Deliver, FeedMessage, FeedState, MalformedMessage
from services.gateway.metrics import STREAM_MESSAGES
from services.retry import Backoff, pause
from services.settings import Settings

log = structlog.get_logger("talk.gateway")

LIVE_PREFETCH = 1_000
REPLAY_PREFETCH = 256
OFFSET_HEADER = "x-stream-offset"


def _offset_of(message: DeliveredMessage) -> int:
    headers = message.header.properties.headers or {}
    return int(headers[OFFSET_HEADER])


def _parse(message: DeliveredMessage, offset: int) -> FeedMessage | None:
    try:
        return FeedMessage.parse(offset, message.body, message.header.properties.message_id)
    except MalformedMessage as exc:
        STREAM_MESSAGES.labels("malformed").inc()
        log.warning("gateway.malformed_message", offset=offset, error=str(exc))
        return None


class RabbitMQFeed(FeedState):
    not_running = "not attached to the RabbitMQ stream"

    def __init__(self, settings: Settings, *, name: str = "talk-gateway") -> None:
        super().__init__()
        self.settings = settings
        self.name = name
        self._nodes = BrokerNodes(settings)  # after a loss, the next node of TALK_AMQP_URL
        self._attached_at: datetime | None = None
        self._connection: AbstractConnection | None = None

    def _start_argument(self) -> int | str | datetime:
        if self._position is not None:
            return self._position + 1
        if self._attached_at is not None:
            return self._attached_at - timedelta(seconds=1)
        return "next"

    async def run(self, deliver: Deliver, stop: asyncio.Event) -> None:
        backoff = Backoff(0.2, 5.0)
        while not stop.is_set():
            delay = backoff.next()
            try:
                await self._consume(deliver, stop)
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except (aiormq.exceptions.AMQPError, OSError, ConnectionError, TimeoutError) as exc:
                log.warning("gateway.stream_lost", error=f"{type(exc).__name__}: {exc}",
                            position=self._position, retry_in=delay)
            finally:
                self._ready.clear()
            if not stop.is_set():
                await pause(delay, stop)

    async def _consume(self, deliver: Deliver, stop: asyncio.Event) -> None:
        connection = await self._nodes.connect(self.name)
        self._connection = connection
        try:
            await ensure_topology(connection, self.settings)
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=LIVE_PREFETCH)
            raw = await channel.get_underlay_channel()
            ack_every = LIVE_PREFETCH // 4
            unacked = 0

            async def on_message(message: DeliveredMessage) -> None:
                nonlocal unacked
                offset = _offset_of(message)
                if self._position is None or offset > self._position:
                    self._position = offset
                    msg = _parse(message, offset)
                    if msg is not None:
                        deliver(msg)
                unacked += 1
                if unacked >= ack_every and not raw.is_closed:
                    unacked = 0
                    with suppress(aiormq.exceptions.AMQPError, ConnectionError):
                        await raw.basic_ack(message.delivery.delivery_tag, multiple=True)

            start = self._start_argument()
            await raw.basic_consume(self.settings.stream_queue, on_message, no_ack=False,
                                    arguments={OFFSET_HEADER: start})
            if self._attached_at is None:
                self._attached_at = datetime.now(UTC)
            self._ready.set()
            log.info("gateway.stream_attached", queue=self.settings.stream_queue,
                     start=str(start))
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({stopping, raw.closing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
            if not stop.is_set():
                raise ConnectionError("the stream channel closed")
        finally:
            self._ready.clear()
            self._connection = None
            with suppress(Exception):
                await connection.close()

    @asynccontextmanager
    async def replay(self, start: int) -> AsyncIterator[AsyncIterator[FeedMessage]]:
        connection = self._connection
        if connection is None or connection.is_closed:
            raise ConnectionError("not attached to the RabbitMQ stream")
        channel = await connection.channel()
        try:
            await channel.set_qos(prefetch_count=REPLAY_PREFETCH)
            raw = await channel.get_underlay_channel()
            stream = _ReplayStream(raw, start)
            await raw.basic_consume(self.settings.stream_queue, stream.on_message, no_ack=False,
                                    arguments={OFFSET_HEADER: start})
            yield stream
        finally:
            with suppress(Exception):
                if not channel.is_closed:
                    await channel.close()


class _ReplayStream:
    """The messages of one replay consumer, in order; acks every half prefetch."""

    def __init__(self, raw: aiormq.abc.AbstractChannel, start: int) -> None:
        self._raw = raw
        self._start = start
        self._queue: asyncio.Queue[DeliveredMessage | None] = asyncio.Queue()
        self._taken = 0
        raw.closing.add_done_callback(lambda _: self._queue.put_nowait(None))

    async def on_message(self, message: DeliveredMessage) -> None:
        self._queue.put_nowait(message)

    def __aiter__(self) -> _ReplayStream:
        return self

    async def __anext__(self) -> FeedMessage:
        while True:
            message = await self._queue.get()
            if message is None:
                raise ConnectionError("the replay channel closed")
            self._taken += 1
            if self._taken >= REPLAY_PREFETCH // 2:
                self._taken = 0
                await self._raw.basic_ack(message.delivery.delivery_tag, multiple=True)
            offset = _offset_of(message)
            if offset < self._start:
                continue
            msg = _parse(message, offset)
            if msg is not None:
                return msg
