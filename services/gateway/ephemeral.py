"""Signals between gateways that are never stored (typing): the non-durable RabbitMQ fanout
exchange ``settings.ephemeral_exchange`` (``talk.ephemeral``), or, in ``talk up`` without
RabbitMQ, a direct call inside the process.

Every gateway binds an exclusive, auto-deleted queue of its own (messages expire after
:data:`SIGNAL_TTL_MS`: a late typing signal is worth nothing) and receives every signal,
its own included; it picks the sockets itself. Publishing is fire-and-forget: no confirms,
not persistent, dropped while the broker is unreachable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

import aio_pika
import structlog
from aio_pika.abc import AbstractConnection, AbstractExchange, AbstractIncomingMessage

from services.amqp import AMQP_ERRORS, run_connected
from services.settings import Settings

log = structlog.get_logger("talk.gateway")

SIGNAL_TTL_MS = 1_000
Receive = Callable[[bytes], None]


class EphemeralBus(Protocol):
    async def run(self, receive: Receive, stop: asyncio.Event) -> None:
        """Hand every signal published by any gateway to ``receive`` until ``stop``."""

    async def publish(self, body: bytes) -> None:
        """Send a signal to every gateway (this one included); never raises, may drop."""


class InProcessBus:
    """One process, one gateway: a signal goes straight to the receiver."""

    def __init__(self) -> None:
        self._receive: Receive | None = None

    async def run(self, receive: Receive, stop: asyncio.Event) -> None:
        self._receive = receive
        try:
            await stop.wait()
        finally:
            self._receive = None

    async def publish(self, body: bytes) -> None:
        if self._receive is not None:
            self._receive(body)


class RabbitMQBus:
    def __init__(self, settings: Settings, *, name: str = "talk-gateway-ephemeral") -> None:
        self.settings = settings
        self.name = name
        self._exchange: AbstractExchange | None = None
        self.ready = asyncio.Event()

    async def run(self, receive: Receive, stop: asyncio.Event) -> None:
        async def session(connection: AbstractConnection) -> None:
            channel = await connection.channel()
            exchange = await channel.declare_exchange(
                self.settings.ephemeral_exchange, aio_pika.ExchangeType.FANOUT,
                durable=False)
            queue = await channel.declare_queue(
                "", exclusive=True, auto_delete=True,
                arguments={"x-message-ttl": SIGNAL_TTL_MS})
            await queue.bind(exchange)

            async def on_message(message: AbstractIncomingMessage) -> None:
                receive(message.body)

            await queue.consume(on_message, no_ack=True)
            self._exchange = exchange
            self.ready.set()
            closed = (await channel.get_underlay_channel()).closing
            stopping = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({stopping, closed}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                self._exchange = None
                self.ready.clear()
            if not stop.is_set():
                raise ConnectionError("the ephemeral channel closed")

        await run_connected(self.settings, self.name, stop, session)

    async def publish(self, body: bytes) -> None:
        exchange = self._exchange
        if exchange is None:
            return
        try:
            await exchange.publish(
                aio_pika.Message(body, content_type="application/json",
                                 delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT),
                routing_key="")
        except AMQP_ERRORS as exc:
            log.info("gateway.ephemeral_publish_dropped", error=repr(exc))
