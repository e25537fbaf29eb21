"""The hub: every open connection of this gateway process, indexed by agent, and the live
dispatch of each stream message to the sockets that may see it.

Dispatch is synchronous (it only queues frames), so a message reaches every socket in one
step of the event loop, and a replay that checks the feed's position between two steps
sees either all of a message's live deliveries or none.
"""

from __future__ import annotations

import asyncio

import orjson
import structlog

from services.gateway.connections import Connection
from services.gateway.dedupe import RecentIds
from services.gateway.feed import Feed, FeedMessage
from services.gateway.limits import ReplaySlots
from services.gateway.metrics import CONNECTED_SOCKETS, STREAM_MESSAGES, STREAM_OFFSET
from services.gateway.tokens import ResumeTokens

log = structlog.get_logger("talk.gateway")

DEDUPE_CAPACITY = 16_384  # message ids remembered to drop republished events
MAX_REPLAYS_PER_CUSTOMER = 16
MAX_REPLAYS_PER_AGENT = 2


class Hub:
    def __init__(self, feed: Feed, *, tokens: ResumeTokens, send_buffer_bytes: int,
                 locate_timeout: float, max_replays: int, max_sockets_per_agent: int,
                 max_replays_per_customer: int = MAX_REPLAYS_PER_CUSTOMER,
                 max_replays_per_agent: int = MAX_REPLAYS_PER_AGENT) -> None:
        self.feed = feed
        self.tokens = tokens
        self.send_buffer_bytes = send_buffer_bytes
        self.locate_timeout = locate_timeout
        self.max_sockets_per_agent = max_sockets_per_agent
        self.replay_slots = ReplaySlots(max_replays, per_customer=max_replays_per_customer,
                                        per_agent=max_replays_per_agent)
        self._by_agent: dict[str, list[Connection]] = {}  # lists: an agent has few sockets
        self._recent = RecentIds(DEDUPE_CAPACITY)
        self._delivered = STREAM_MESSAGES.labels("delivered")
        self._duplicate = STREAM_MESSAGES.labels("duplicate")

    @property
    def position(self) -> int | None:
        return self.feed.position

    def __len__(self) -> int:
        return sum(len(c) for c in self._by_agent.values())

    def connections(self) -> list[Connection]:
        return [c for conns in self._by_agent.values() for c in conns]

    def has_room_for(self, customer_id: str, agent_id: str) -> bool:
        """Whether the agent may open one more socket here."""
        held = sum(1 for c in self._by_agent.get(agent_id, ()) if c.customer_id == customer_id)
        return held < self.max_sockets_per_agent

    def add(self, conn: Connection) -> None:
        self._by_agent.setdefault(conn.agent_id, []).append(conn)
        CONNECTED_SOCKETS.inc()

    def remove(self, conn: Connection) -> None:
        conns = self._by_agent.get(conn.agent_id)
        if conns is None or conn not in conns:
            return
        conns.remove(conn)
        if not conns:
            del self._by_agent[conn.agent_id]
        CONNECTED_SOCKETS.dec()

    def dispatch(self, msg: FeedMessage) -> None:
        """Deliver a live message to every socket whose agent is in its audience (same
        customer) and that subscribed to a matching topic."""
        STREAM_OFFSET.set(msg.offset)
        if self._recent.seen(msg.message_id):
            self._duplicate.inc()
            return
        self._delivered.inc()
        by_agent = self._by_agent
        for agent_id in msg.audience:
            conns = by_agent.get(agent_id)
            if not conns:
                continue
            for conn in conns:
                if conn.customer_id != msg.customer_id:
                    continue
                topic = conn.live_topic(msg)
                if topic is not None:
                    conn.send_event(msg, topic, self.tokens)
        msg.drop_frames()

    def dispatch_typing(self, customer_id: str, chat_id: str, agent_id: str,
                        audience: list[str]) -> int:
        """Hand a typing signal to the sockets of the audience (the typer's excepted) that
        follow the talk (its ``chat:`` topic or their ``agent:`` topic); how many."""
        topic = f"chat:{chat_id}"
        frame: bytes | None = None
        sent = 0
        for member in audience:
            if member == agent_id:
                continue
            for conn in self._by_agent.get(member, ()):
                if conn.customer_id != customer_id or not (
                        topic in conn.topics or conn.agent_topic in conn.topics):
                    continue
                if frame is None:
                    frame = orjson.dumps({"type": "typing", "topic": topic,
                                          "data": {"chat_id": chat_id, "agent_id": agent_id}})
                conn.send(frame)
                sent += 1
        return sent

    def close_expired(self, now: float, code: int) -> int:
        """Start closing every socket whose token has expired; returns how many."""
        expired = [c for c in self.connections()
                   if c.expires_at is not None and c.expires_at <= now and not c.closing]
        for conn in expired:
            conn.start_close(code, b"token expired")
        return len(expired)

    async def close_all(self, code: int, message: bytes) -> None:
        closers = [conn.start_close(code, message) for conn in self.connections()]
        if closers:
            await asyncio.gather(*closers, return_exceptions=True)
