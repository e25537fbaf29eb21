"""Helpers for the gateway tests: a WebSocket client that reads JSON frames, a publisher of
stream messages in the published contract, and talks made through the real API."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID, uuid4

import aio_pika
import orjson
from aiohttp import ClientSession, ClientWebSocketResponse, WSMsgType

from services.auth import mint_token
from tests.support import TEST_SECRET, bearer, wait_until

FRAME_TIMEOUT = 10.0
CHATS = "/v1.0/service_agents/talk_chats"


class Client:
    """One agent's socket; ``frames`` are the JSON frames received, in order. With
    ``validate`` every frame received is checked against the gateway's AsyncAPI document."""

    def __init__(self, ws: ClientWebSocketResponse, customer_id: UUID, agent_id: UUID,
                 validate: bool = False) -> None:
        self.ws = ws
        self.customer_id = customer_id
        self.agent_id = agent_id
        self.validate = validate
        self.last_token: str | None = None
        self.received = 0

    async def send(self, payload: Any) -> None:
        if isinstance(payload, (bytes, str)):
            await self.ws.send_str(payload if isinstance(payload, str) else payload.decode())
        else:
            await self.ws.send_str(orjson.dumps(payload).decode())

    async def frame(self, timeout: float = FRAME_TIMEOUT) -> dict:
        try:
            msg = await self.ws.receive(timeout=timeout)
        except TimeoutError:
            raise AssertionError(f"agent {self.agent_id}: no frame within {timeout}s (after "
                                 f"{self.received} frames)") from None
        self.received += 1
        if msg.type is not WSMsgType.TEXT:
            raise AssertionError(f"expected a text frame, got {msg.type!r} {msg.data!r} "
                                 f"{msg.extra!r}")
        frame = orjson.loads(msg.data)
        if self.validate:
            from tests.integration.gateway.contract import validate_frame

            validate_frame(frame)
        if "resume_token" in frame:
            self.last_token = frame["resume_token"]
        return frame

    async def frames(self, n: int, timeout: float = FRAME_TIMEOUT) -> list[dict]:
        return [await self.frame(timeout) for _ in range(n)]

    async def subscribe(self, *topics: str, resume_token: str | None = None) -> dict:
        """Subscribe and return the ``subscribed`` frame (every topic must be accepted)."""
        payload: dict[str, Any] = {"type": "subscribe", "topics": list(topics)}
        if resume_token is not None:
            payload["resume_token"] = resume_token
        await self.send(payload)
        frame = await self.frame()
        assert frame == {"type": "subscribed", "topics": list(topics)}, frame
        return frame

    async def close(self) -> None:
        await self.ws.close()


class Gateway:
    """A running gateway app (see the ``start_gateway`` fixture)."""

    def __init__(self, base_url: str, app: Any, session: ClientSession, server: Any) -> None:
        self.base_url = base_url
        self.app = app
        self.session = session
        self.server = server

    async def stop(self) -> None:
        """Shut the gateway down as SIGTERM would (aiohttp's graceful shutdown)."""
        await self.server.close()

    @property
    def hub(self):
        from services.gateway.app import HUB

        return self.app[HUB]

    async def connect(self, customer_id: UUID, agent_id: UUID, *, validate: bool = False,
                      **kwargs: Any) -> Client:
        token = mint_token(TEST_SECRET, customer_id, agent_id)
        ws = await self.session.ws_connect(f"{self.base_url}/v1.0/ws?token={token}", **kwargs)
        return Client(ws, customer_id, agent_id, validate)


class StreamPublisher:
    """Publishes messages exactly as DESIGN's "Published stream" describes them."""

    def __init__(self, exchange: aio_pika.abc.AbstractExchange) -> None:
        self.exchange = exchange
        self.position = 0

    async def publish(self, type_: str, customer_id: UUID, chat_id: UUID, audience: list[UUID],
                      data: Any = None, *, event_id: UUID | None = None) -> dict:
        self.position += 1
        event_id = event_id or uuid4()
        body = {"type": type_, "event_id": str(event_id), "position": self.position,
                "customer_id": str(customer_id), "chat_id": str(chat_id),
                "audience": [str(a) for a in audience],
                "data": data if data is not None else {"id": str(uuid4()), "n": self.position}}
        await self.exchange.publish(
            aio_pika.Message(orjson.dumps(body), message_id=str(event_id),
                             content_type="application/json",
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key=f"{customer_id}.{chat_id}.{type_}",
        )
        return body


def event_frame(body: dict, topic: str) -> dict:
    """What a socket subscribed on ``topic`` must receive for ``body`` (token aside)."""
    return {"type": body["type"], "topic": topic, "data": body["data"]}


def without_token(frame: dict) -> dict:
    assert isinstance(frame.get("resume_token"), str) and frame["resume_token"], frame
    return {k: v for k, v in frame.items() if k != "resume_token"}


async def post_talk(api, customer_id: UUID, creator: UUID, members: list[UUID]) -> dict:
    """A group talk made through the command API (not waiting for the projection)."""
    resp = await api.post(CHATS, json={
        "type": "group", "name": "t",
        "participants": [{"owner_type": "agent", "owner_id": str(m)} for m in members],
    }, headers=bearer(customer_id, creator))
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def create_talk(api, customer_id: UUID, creator: UUID, members: list[UUID]) -> dict:
    """A group talk made through the command API, projected before this returns."""
    resp = await api.post(CHATS, json={
        "type": "group", "name": "t",
        "participants": [{"owner_type": "agent", "owner_id": str(m)} for m in members],
    }, headers=bearer(customer_id, creator))
    assert resp.status == 200, await resp.text()
    chat = await resp.json()
    await projected(api, customer_id, creator, chat["id"], resp.headers["X-Talk-Position"])
    return chat


async def projected(api, customer_id: UUID, agent_id: UUID, chat_id: str, position: str) -> None:
    """Wait until the read tables hold the write at ``position`` (read-your-writes; a busy
    machine may need more than one ``X-Talk-Min-Position`` wait)."""

    async def reached() -> bool:
        resp = await api.get(f"{CHATS}/{chat_id}", headers={
            **bearer(customer_id, agent_id), "X-Talk-Min-Position": position})
        if resp.status == 503:
            return False
        assert resp.status in (200, 403), await resp.text()
        return True

    await wait_until(reached, timeout=30, what=f"the projection to reach {position}")


async def wait_closed(ws: ClientWebSocketResponse, timeout: float = FRAME_TIMEOUT) -> int | None:
    """Read until the server closes; returns the code of its close frame (None if the
    connection ended without one)."""
    async def read() -> int | None:
        while True:
            msg = await ws.receive()
            if msg.type is WSMsgType.CLOSE:
                return msg.data
            if msg.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                return None

    return await asyncio.wait_for(read(), timeout)
