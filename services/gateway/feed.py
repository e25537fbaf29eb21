"""The published stream as the gateway reads it: the :class:`Feed` interface and the
:class:`FeedMessage` it yields.

A feed has one job: hand every published event, in stream order, to the hub (``run``), and
read the stream again from an offset for a resuming client (``replay``). Two implement it:
:class:`services.gateway.rabbitmq_feed.RabbitMQFeed` (the stream queue, one consumer per
gateway process) and :class:`services.gateway.inprocess_feed.InProcessFeed` (fed directly by
the projector when ``talk up`` runs without RabbitMQ).

Message bodies follow DESIGN's "Published stream": ``{"type", "event_id", "position",
"customer_id", "chat_id", "audience": [agent ids], "data": <resource>}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from events.catalogue import PUBLISHED_NAMES
from services.gateway.tokens import ResumeTokens

EVENT_TYPES = frozenset(PUBLISHED_NAMES.values())  # from the event catalogue


class MalformedMessage(ValueError):
    """A stream message that does not follow the published contract (it is skipped)."""


@dataclass(slots=True, eq=False)
class FeedMessage:
    """One published event at its stream offset, parsed once and shared by every socket."""

    offset: int
    message_id: str
    type: str
    customer_id: str
    chat_id: str
    audience: frozenset[str]
    data: Any
    size: int = 0  # bytes of the published body (what a feed's byte budget counts)
    chat_topic: str = ""
    _frames: dict[str, bytes] = field(default_factory=dict)
    _token: str = ""

    def __post_init__(self) -> None:
        self.chat_topic = f"chat:{self.chat_id}"

    @classmethod
    def from_body(cls, offset: int, body: Any, message_id: str | None = None,
                  size: int = 0) -> FeedMessage:
        """Build from a decoded body; raises :class:`MalformedMessage` if it is not one."""
        if not isinstance(body, dict):
            raise MalformedMessage("the body is not a JSON object")
        try:
            type_ = body["type"]
            customer_id = body["customer_id"]
            chat_id = body["chat_id"]
            audience = body["audience"]
            data = body["data"]
            event_id = message_id or body["event_id"]
        except KeyError as exc:
            raise MalformedMessage(f"the body lacks {exc.args[0]!r}") from None
        if type_ not in EVENT_TYPES:
            raise MalformedMessage(f"unknown event type {type_!r}")
        if not (isinstance(customer_id, str) and isinstance(chat_id, str)
                and isinstance(event_id, str) and isinstance(audience, list)
                and all(isinstance(a, str) for a in audience)):
            raise MalformedMessage("customer_id, chat_id, event_id and audience must be strings")
        return cls(offset=offset, message_id=event_id, type=type_,
                   customer_id=customer_id.lower(), chat_id=chat_id.lower(),
                   audience=frozenset(a.lower() for a in audience), data=data, size=size)

    @classmethod
    def parse(cls, offset: int, body: bytes, message_id: str | None = None) -> FeedMessage:
        try:
            decoded = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise MalformedMessage("the body is not JSON") from None
        return cls.from_body(offset, decoded, message_id, len(body))

    def resume_token(self, tokens: ResumeTokens) -> str:
        if not self._token:
            self._token = tokens.encode(self.offset, self.message_id, self.customer_id)
        return self._token

    def frame(self, topic: str, tokens: ResumeTokens) -> bytes:
        """The frame sent on ``topic`` (built once per topic and shared by every socket
        until :meth:`drop_frames`; the token is the customer's, like every frame)."""
        frame = self._frames.get(topic)
        if frame is None:
            frame = orjson.dumps({"type": self.type, "topic": topic,
                                  "resume_token": self.resume_token(tokens),
                                  "data": self.data})
            self._frames[topic] = frame
        return frame

    def drop_frames(self) -> None:
        """Forget the built frames (a feed that keeps messages keeps them small)."""
        if self._frames:
            self._frames.clear()


Deliver = Callable[[FeedMessage], None]


class Feed(Protocol):
    """Where the gateway reads the published stream from."""

    @property
    def position(self) -> int | None:
        """Offset of the last message handed to ``deliver`` (``None`` before the first).
        Every later message will be handed to ``deliver`` too."""

    @property
    def ready(self) -> asyncio.Event:
        """Set while the live feed is attached to the stream."""

    async def run(self, deliver: Deliver, stop: asyncio.Event) -> None:
        """Hand every message published from now on to ``deliver`` (synchronously, in stream
        order, each once even across reconnects) until ``stop`` is set."""

    def replay(self, start: int) -> AbstractAsyncContextManager[AsyncIterator[FeedMessage]]:
        """The stream read from offset ``start`` (or from its first retained message if
        ``start`` is older), then following new messages, until the context exits."""

    async def check(self) -> None:
        """Raise if the feed is not attached (the readiness check)."""


class FeedState:
    """What every feed keeps alike: the last offset handed on and whether it is running.
    ``not_running`` is what ``check`` (readiness) says while it is not."""

    not_running = "the feed is not running"

    def __init__(self) -> None:
        self._position: int | None = None
        self._ready = asyncio.Event()

    @property
    def position(self) -> int | None:
        return self._position

    @property
    def ready(self) -> asyncio.Event:
        return self._ready

    async def check(self) -> None:
        if not self._ready.is_set():
            raise ConnectionError(self.not_running)
