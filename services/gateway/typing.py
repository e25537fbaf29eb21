"""Typing signals: ``{"type": "typing", "chat_id"}`` from a participant reaches every other
participant of that talk subscribed to it (``chat:<id>``, or their ``agent:`` topic) as
``{"type": "typing", "topic": "chat:<id>", "data": {"chat_id", "agent_id"}}``, on whichever
gateway they are.

The sending gateway lets through at most one signal per agent and talk every
:data:`TYPING_INTERVAL` seconds (the rest are dropped before any query), checks that the
agent is a participant (:mod:`services.gateway.membership`), and publishes the signal with
the talk's participants as its audience on the ephemeral bus
(:mod:`services.gateway.ephemeral`). Every gateway receives it and hands it to its own
sockets of that customer whose agent is in the audience, not the typer's; a receiving
gateway too drops a second signal of one agent and talk within the interval (the agent may
type on two gateways at once). Nothing is stored; no resume token is attached.

Signal body on the bus: ``{"customer_id", "chat_id", "agent_id", "audience": [agent ids]}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import orjson
import structlog

from services.gateway.ephemeral import EphemeralBus
from services.gateway.limits import RecentKeys
from services.gateway.metrics import TYPING

if TYPE_CHECKING:
    from services.gateway.hub import Hub

log = structlog.get_logger("talk.gateway")

TYPING_INTERVAL = 2.0  # seconds: at most one signal per agent and talk


class TypingRelay:
    def __init__(self, hub: Hub, bus: EphemeralBus) -> None:
        self.hub = hub
        self.bus = bus
        self._sent = RecentKeys(TYPING_INTERVAL)
        self._delivered = RecentKeys(TYPING_INTERVAL)

    def may_send(self, customer_id: str, agent_id: str, chat_id: str) -> bool:
        """Whether this agent's signal on this talk may go out now (else it is dropped)."""
        if self._sent.allow((customer_id, agent_id, chat_id)):
            return True
        TYPING.labels("dropped_rate").inc()
        return False

    async def send(self, customer_id: str, chat_id: str, agent_id: str,
                   audience: list[str]) -> None:
        TYPING.labels("sent").inc()
        await self.bus.publish(orjson.dumps({
            "customer_id": customer_id, "chat_id": chat_id, "agent_id": agent_id,
            "audience": audience}))

    def receive(self, body: bytes) -> None:
        """A signal from the bus (any gateway's): to this gateway's sockets that may see it."""
        try:
            signal = orjson.loads(body)
            customer_id, chat_id = signal["customer_id"], signal["chat_id"]
            agent_id, audience = signal["agent_id"], signal["audience"]
            if not (isinstance(customer_id, str) and isinstance(chat_id, str)
                    and isinstance(agent_id, str) and isinstance(audience, list)):
                raise TypeError("not strings")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            log.warning("gateway.malformed_typing_signal", error=repr(exc))
            return
        if not self._delivered.allow((customer_id, chat_id, agent_id)):
            TYPING.labels("dropped_repeat").inc()
            return
        sent = self.hub.dispatch_typing(customer_id, chat_id, agent_id, audience)
        TYPING.labels("delivered").inc(sent)
