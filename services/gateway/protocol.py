"""What a client may send and how the gateway answers it.

``{"type": "subscribe", "topics": [...], "resume_token"?: "..."}`` and
``{"type": "unsubscribe", "topics": [...]}``. Each topic is checked on its own: the accepted
ones are acknowledged in one ``subscribed`` / ``unsubscribed`` frame, each refused one gets
an error frame; anything else gets an error frame naming the problem. The socket stays open.
"""

from __future__ import annotations

from uuid import UUID

import orjson

from query_api.read_store import ReadStore
from services.gateway.connections import Connection
from services.gateway.hub import Hub
from services.gateway.replay import start_replay
from services.gateway.subscriptions import MAX_TOPICS, Topic, TopicError, authorize, parse_topic
from services.gateway.tokens import InvalidResumeToken, decode_token


def error_frame(error: str, detail: str, **extra: object) -> dict:
    return {"type": "error", "error": error, "detail": detail, **extra}


class Session:
    """The client side of one socket: parses its messages and changes its subscriptions."""

    __slots__ = ("hub", "conn", "store", "customer_id", "agent_id")

    def __init__(self, hub: Hub, conn: Connection, store: ReadStore, customer_id: UUID,
                 agent_id: UUID) -> None:
        self.hub = hub
        self.conn = conn
        self.store = store
        self.customer_id = customer_id
        self.agent_id = agent_id

    def error(self, error: str, detail: str, **extra: object) -> None:
        self.conn.send_json(error_frame(error, detail, **extra))

    async def handle(self, text: str | bytes) -> None:
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError:
            self.error("malformed_frame", "a client message must be a JSON object")
            return
        if not isinstance(message, dict):
            self.error("malformed_frame", "a client message must be a JSON object")
            return
        kind = message.get("type")
        if kind not in ("subscribe", "unsubscribe"):
            self.error("unknown_type", "type must be 'subscribe' or 'unsubscribe'",
                       received=kind if isinstance(kind, str) else None)
            return
        topics = message.get("topics")
        if not isinstance(topics, list) or not topics:
            self.error("invalid_topics", "topics must be a non-empty list of topics")
            return
        if kind == "subscribe":
            await self.subscribe(topics, message.get("resume_token"))
        else:
            self.unsubscribe(topics)

    def _parse(self, topics: list) -> list[Topic]:
        parsed: dict[str, Topic] = {}
        for text in topics:
            topic = parse_topic(text)
            if isinstance(topic, TopicError):
                self.conn.send_json(topic.frame())
            else:
                parsed[str(topic)] = topic
        return list(parsed.values())

    async def subscribe(self, topics: list, resume_token: object) -> None:
        if len(topics) > MAX_TOPICS:  # each topic costs a query: refuse the frame outright
            self.error("too_many_topics", f"a socket may hold at most {MAX_TOPICS} topics")
            return
        point = None
        if resume_token is not None:
            try:
                point = decode_token(resume_token)
            except InvalidResumeToken as exc:
                self.error("invalid_resume_token", str(exc))
                return
            if self.conn.replay is not None:
                self.error("resume_in_progress", "wait for the running resume to catch up")
                return
        conn = self.conn
        accepted: list[str] = []
        for topic in self._parse(topics):
            name = str(topic)
            if name in conn.topics or (conn.replay is not None and name in conn.replay.topics):
                accepted.append(name)  # already subscribed: nothing changes
                continue
            adding = sum(1 for t in accepted if t not in conn.topics)
            if len(conn.topics) + adding >= MAX_TOPICS:  # counted across this frame too
                self.error("too_many_topics", f"a socket may hold at most {MAX_TOPICS} topics",
                           topic=name)
                continue
            refused = await authorize(self.store, self.customer_id, self.agent_id, topic)
            if refused is not None:
                conn.send_json(refused.frame())
                continue
            accepted.append(name)
        if conn.closing or not accepted:
            return
        fresh = [t for t in accepted
                 if t not in conn.topics and not (conn.replay and t in conn.replay.topics)]
        conn.send_json({"type": "subscribed", "topics": accepted})
        if point is not None and fresh:
            start_replay(self.hub, conn, set(fresh), point)
        else:
            position = self.hub.position
            for name in fresh:
                conn.topics[name] = -1 if position is None else position

    def unsubscribe(self, topics: list) -> None:
        conn = self.conn
        removed: list[str] = []
        for topic in self._parse(topics):
            name = str(topic)
            conn.topics.pop(name, None)
            if conn.replay is not None:
                conn.replay.topics.discard(name)
            removed.append(name)
        if removed:
            conn.send_json({"type": "unsubscribed", "topics": removed})
