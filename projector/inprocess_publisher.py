"""The outbox published into an in-process feed instead of RabbitMQ: how ``talk up`` without
``TALK_AMQP_URL`` delivers events to its built-in gateway. Same outbox, same order and the
same bodies as the broker path; only the exchange differs."""

from __future__ import annotations

import asyncio
from typing import Any

from projector.publisher import Publisher
from projector.wakeup import Wakeup
from services.gateway.inprocess_feed import FeedExchange, InProcessFeed
from services.settings import Settings


class InProcessPublisher(Publisher):
    uses_broker = False

    def __init__(self, settings: Settings, feed: InProcessFeed, **kwargs: Any) -> None:
        super().__init__(settings, connection_name="talk-inprocess-publisher", **kwargs)
        self.exchange = FeedExchange(feed)

    async def _run_locked(self, stop: asyncio.Event, wakeup: Wakeup) -> None:
        async with await self._connect() as db:
            if not await self._acquire_lock(db, stop):
                return
            self._set_active(True)
            self.connected.set()
            try:
                while not stop.is_set():
                    if await self.publish_batch(db, self.exchange, stop) < self.batch_size:
                        await wakeup.wait(self.settings.projector_poll_interval)
            finally:
                self.connected.clear()
