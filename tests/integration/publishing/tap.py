"""A test consumer of the published stream: an exclusive queue bound to the exchange with a
routing pattern (e.g. one customer's events), connected straight to the broker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aio_pika
import orjson
from aio_pika.abc import AbstractConnection, AbstractIncomingMessage

from services.amqp import declare_topology
from services.settings import Settings
from tests.support import wait_until


@dataclass(frozen=True)
class Received:
    routing_key: str
    message_id: str | None
    content_type: str | None
    delivery_mode: int | None
    body: dict[str, Any]


class Tap:
    def __init__(self, connection: AbstractConnection) -> None:
        self.connection = connection
        self.received: list[Received] = []

    @classmethod
    async def open(cls, settings: Settings, pattern: str) -> Tap:
        connection = await aio_pika.connect(settings.amqp_url)
        tap = cls(connection)
        channel = await connection.channel()
        exchange = await declare_topology(channel, settings)
        queue = await channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(exchange, pattern)
        await queue.consume(tap._on_message, no_ack=True)
        return tap

    async def close(self) -> None:
        await self.connection.close()

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self.received.append(Received(
            routing_key=message.routing_key or "",
            message_id=message.message_id,
            content_type=message.content_type,
            delivery_mode=int(message.delivery_mode) if message.delivery_mode else None,
            body=orjson.loads(message.body),
        ))

    def first_copies(self) -> list[Received]:
        """What a consumer deduplicating by message_id keeps, in arrival order."""
        seen: set[str | None] = set()
        out = []
        for r in self.received:
            if r.message_id not in seen:
                seen.add(r.message_id)
                out.append(r)
        return out

    def of_type(self, event: str) -> list[Received]:
        return [r for r in self.first_copies() if r.body["type"] == event]

    async def wait_for(self, count: int, what: str, timeout: float = 30.0,
                       event: str | None = None) -> list[Received]:
        """Wait until ``count`` distinct events (of type ``event``, if given) have arrived."""
        def matching() -> list[Received]:
            return self.of_type(event) if event else self.first_copies()

        async def enough() -> bool:
            return len(matching()) >= count

        await wait_until(enough, timeout=timeout, what=what)
        return matching()
