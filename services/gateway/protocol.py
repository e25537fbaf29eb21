"""What a client may send and how the gateway answers it.

``{"type": "subscribe", "topics": [...], "resume_token"?: "..."}``,
``{"type": "unsubscribe", "topics": [...]}`` and ``{"type": "typing", "chat_id": "..."}``.
Each topic is checked on its own: the accepted ones are acknowledged in one ``subscribed``
/ ``unsubscribed`` frame, each refused one gets an error frame; anything else gets an error
frame naming the problem. The socket stays open. The models of every message and frame are
in :mod:`services.gateway.contract` (the AsyncAPI document is generated from them).

Costs are bounded per socket: a subscribe frame asks the read tables once for all its
``chat:`` topics (plus the re-checks of :mod:`services.gateway.membership` while the
projection catches up); each checked topic, and each typing signal let through, spends one
of the socket's membership checks (:class:`services.gateway.limits.TokenBucket`); refused
topics count toward the socket's :data:`MAX_TOPICS` like subscribed ones.
"""

from __future__ import annotations

from uuid import UUID

import orjson
import psycopg

from services.gateway.connections import Connection
from services.gateway.hub import Hub
from services.gateway.membership import ALLOWED, DETAILS, Membership
from services.gateway.replay import resync_now, start_replay
from services.gateway.subscriptions import MAX_TOPICS, Topic, TopicError, parse_topic
from services.gateway.tokens import InvalidResumeToken
from services.gateway.typing import TypingRelay

CLIENT_TYPES = ("subscribe", "unsubscribe", "typing")


def error_frame(error: str, detail: str, **extra: object) -> dict:
    return {"type": "error", "error": error, "detail": detail, **extra}


class Session:
    """The client side of one socket: parses its messages and changes its subscriptions."""

    __slots__ = ("hub", "conn", "membership", "typing", "customer_id", "agent_id")

    def __init__(self, hub: Hub, conn: Connection, membership: Membership, typing: TypingRelay,
                 customer_id: UUID, agent_id: UUID) -> None:
        self.hub = hub
        self.conn = conn
        self.membership = membership
        self.typing = typing
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
        if kind not in CLIENT_TYPES:
            self.error("unknown_type", "type must be 'subscribe', 'unsubscribe' or 'typing'",
                       received=kind if isinstance(kind, str) else None)
            return
        if kind == "typing":
            await self.typing_signal(message.get("chat_id"))
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
        if len(topics) > MAX_TOPICS:  # each topic costs a check: refuse the frame outright
            self.error("too_many_topics", f"a socket may hold at most {MAX_TOPICS} topics")
            return
        conn = self.conn
        point = None
        if resume_token is not None:
            try:
                point = self.hub.tokens.decode(resume_token, conn.customer_id)
            except InvalidResumeToken as exc:
                self.error("invalid_resume_token", str(exc))
                return
            if conn.replay is not None:
                self.error("resume_in_progress", "wait for the running resume to catch up")
                return
        candidates: list[str] = []  # in the order asked
        fresh: set[str] = set()  # not held yet
        chats: list[Topic] = []  # to ask the read tables about
        for topic in self._parse(topics):
            name = str(topic)
            if name in conn.topics or (conn.replay is not None and name in conn.replay.topics):
                candidates.append(name)  # already subscribed: nothing changes
                continue
            if conn.held_topics() + len(fresh) >= MAX_TOPICS:
                self.error("too_many_topics", f"a socket may hold at most {MAX_TOPICS} topics "
                           "(refused ones count)", topic=name)
                continue
            if topic.kind == "agent" and topic.id != self.agent_id:
                conn.refused += 1
                self.error("forbidden", "agent topics are only for your own agent id",
                           topic=name)
                continue
            candidates.append(name)
            fresh.add(name)
            if topic.kind == "chat":
                chats.append(topic)
        if chats:
            fresh -= await self._refused_chats(chats)
        accepted = [name for name in candidates if name in fresh or name in conn.topics
                    or (conn.replay is not None and name in conn.replay.topics)]
        if conn.closing or not accepted:
            return
        conn.send_json({"type": "subscribed", "topics": accepted})
        if point is not None and fresh:
            if point.genuine:
                start_replay(self.hub, conn, fresh, point)
            else:
                resync_now(self.hub, conn, fresh)
        else:
            position = self.hub.position
            for name in fresh:
                conn.topics[name] = -1 if position is None else position

    async def _refused_chats(self, chats: list[Topic]) -> set[str]:
        """The ``chat:`` topics the caller may not follow, each answered with an error."""
        conn = self.conn
        if not conn.checks.take(len(chats)):
            wait = conn.checks.retry_after(len(chats))
            for topic in chats:
                self.error("rate_limited", f"too many subscriptions checked; retry in "
                           f"{wait:.1f} s", topic=str(topic))
            return {str(t) for t in chats}
        verdicts = await self.membership.check(self.customer_id, self.agent_id,
                                               [t.id for t in chats])
        refused = set()
        for topic in chats:
            verdict = verdicts[topic.id]
            if verdict == ALLOWED:
                continue
            if verdict != "unavailable":
                conn.refused += 1
            refused.add(str(topic))
            self.error(verdict, DETAILS[verdict], topic=str(topic))
        return refused

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

    async def typing_signal(self, chat_id: object) -> None:
        """Forward a participant's typing signal (see :mod:`services.gateway.typing`)."""
        try:
            chat = UUID(chat_id) if isinstance(chat_id, str) else None
        except ValueError:
            chat = None
        if chat is None:
            self.error("invalid_chat_id", "typing needs chat_id, the talk's id (a UUID)")
            return
        conn = self.conn
        if not self.typing.may_send(conn.customer_id, conn.agent_id, str(chat)):
            return  # one per agent and talk every TYPING_INTERVAL: the rest are dropped
        if not conn.checks.take(1):
            return  # typing is best effort: no error for a dropped signal
        verdict = (await self.membership.check(self.customer_id, self.agent_id, [chat]))[chat]
        if verdict != ALLOWED:
            self.error(verdict, DETAILS[verdict], chat_id=str(chat))
            return
        try:
            audience = await self.membership.store.audience(self.customer_id, chat)
        except (psycopg.Error, OSError, TimeoutError):
            self.error("unavailable", DETAILS["unavailable"], chat_id=str(chat))
            return
        await self.typing.send(conn.customer_id, str(chat), conn.agent_id,
                               [str(a) for a in audience])
