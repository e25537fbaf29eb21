"""The WebSocket protocol as pydantic models: every message a client may send, every frame
the gateway sends, the error codes and the close codes. The AsyncAPI document
(:mod:`services.gateway.asyncapi`) is generated from them, and the tests validate the
frames the gateway really sends against that document.

An event frame's ``data`` is the resource model of the published event
(:data:`projector.asyncapi.BODY_MODELS`), the one the query API and the RabbitMQ contract
use, so a new event type appears here by itself.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, create_model

from projector.asyncapi import BODY_MODELS
from services.gateway.subscriptions import MAX_TOPICS
from services.gateway.tokens import MAX_TOKEN_LENGTH

TOPIC_PATTERN = r"^(chat|agent):[0-9a-fA-F-]{36}$"
TOPIC_DESCRIPTION = ("`chat:<chat_id>` (a talk the caller is in) or `agent:<own agent id>` "
                     "(every talk the agent is in, including later ones)")

ERROR_CODES: dict[str, str] = {
    "malformed_frame": "the message is not a JSON object in a text frame",
    "unknown_type": "`type` is not one the gateway knows",
    "invalid_topics": "`topics` is not a non-empty list",
    "unknown_topic": "a topic is not `chat:<uuid>` or `agent:<uuid>` (`topic` names it)",
    "not_found": "no such talk for this customer (existence does not leak across customers)",
    "forbidden": "not a participant of the talk (a removed participant included), or another "
                 "agent's `agent:` topic",
    "invalid_resume_token": "`resume_token` is not a token at all (a token that is not this "
                            "deployment's, or another customer's, gets `resync_required`)",
    "resume_in_progress": "a resume of this socket is still replaying: wait for it",
    "too_many_topics": f"the socket would hold more than {MAX_TOPICS} topics (refused topics "
                       "count)",
    "rate_limited": "the socket made too many membership checks; `detail` says when to retry",
    "invalid_chat_id": "a typing message without a talk id (a UUID) in `chat_id`",
    "unavailable": "the read tables could not be asked, or had not caught up within 2 s: "
                   "try again",
}

CLOSE_CODES: dict[int, str] = {
    1001: "the gateway is shutting down: reconnect (to another gateway) and resume",
    4001: "the token expired: reconnect with a fresh token and resume; nothing is missed",
    4008: "the client read too slowly (its send buffer overflowed, or it read nothing for "
          "30 s during a resume): reconnect and resume",
    4029: "the agent already holds the maximum number of sockets on this gateway "
          "(`TALK_GATEWAY_MAX_SOCKETS_PER_AGENT`, default 20): close one first",
}

Topic = Field(pattern=TOPIC_PATTERN, description=TOPIC_DESCRIPTION)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- what a client sends -----------------------------------------------------------------

class Subscribe(_Strict):
    """Follow topics. With `resume_token` (the last one received) the events missed on these
    topics since that token come first, in order, then live ones."""

    type: Literal["subscribe"]
    topics: list[Annotated[str, Field(pattern=TOPIC_PATTERN)]] = Field(
        min_length=1, max_length=MAX_TOPICS, description=TOPIC_DESCRIPTION)
    resume_token: str | None = Field(default=None, max_length=MAX_TOKEN_LENGTH)


class Unsubscribe(_Strict):
    """Stop following topics."""

    type: Literal["unsubscribe"]
    topics: list[str] = Field(min_length=1, description=TOPIC_DESCRIPTION)


class Typing(_Strict):
    """The caller is typing in a talk it is in. At most one per agent and talk every 2 s is
    forwarded (the rest are dropped); never stored."""

    type: Literal["typing"]
    chat_id: UUID


CLIENT_MESSAGES: dict[str, type[BaseModel]] = {
    "subscribe": Subscribe, "unsubscribe": Unsubscribe, "typing": Typing}


# --- what the gateway sends --------------------------------------------------------------

class Subscribed(_Strict):
    """The topics of a subscribe that were accepted; their events flow from here on."""

    type: Literal["subscribed"]
    topics: list[str]


class Unsubscribed(_Strict):
    """The topics of an unsubscribe."""

    type: Literal["unsubscribed"]
    topics: list[str]


class ResyncRequired(_Strict):
    """What was missed since the resume token cannot be replayed (older than the stream's
    retention, another stream's, or not a token of this deployment for this customer): live
    events follow; re-read the talks through the API."""

    type: Literal["resync_required"]


class ErrorFrame(_Strict):
    """A client message (or one of its topics) could not be honoured; the socket stays
    open."""

    type: Literal["error"]
    error: Literal[tuple(ERROR_CODES)]  # type: ignore[valid-type]
    detail: str
    topic: Any = Field(default=None, description="the topic refused, as sent")
    chat_id: str | None = Field(default=None, description="the talk of a refused typing")
    received: str | None = Field(default=None, description="the unknown `type` received")


class TypingData(_Strict):
    chat_id: UUID
    agent_id: UUID = Field(description="who is typing")


class TypingFrame(_Strict):
    """Another participant is typing in a talk the socket follows."""

    type: Literal["typing"]
    topic: str = Topic
    data: TypingData


class EventFrame(_Strict):
    """One published event the agent may see, on the topic it subscribed to."""

    topic: str = Topic
    resume_token: str = Field(description="send it back in a subscribe to resume after it")


def _frame_name(event: str) -> str:
    return "".join(part.capitalize() for part in event.split("_")) + "Frame"


EVENT_FRAMES: dict[str, type[EventFrame]] = {
    event: create_model(
        _frame_name(event),
        __base__=EventFrame,
        __doc__=body.__doc__,
        type=(Literal[event], ...),  # type: ignore[valid-type]
        data=(body.model_fields["data"].annotation, Field(
            description="the resource as the query API shows it after the event")),
    )
    for event, body in BODY_MODELS.items()
}

SERVER_FRAMES: dict[str, type[BaseModel]] = {
    "subscribed": Subscribed, "unsubscribed": Unsubscribed,
    "resync_required": ResyncRequired, "error": ErrorFrame, "typing": TypingFrame,
    **EVENT_FRAMES,
}
