"""The tutorial flow over real HTTP: create a talk, add a participant, post, reply, react,
list. Writes go to ``write`` (the command API, or ``talk up``), reads to ``read`` (the query
API, or the same ``talk up``) with ``X-Talk-Min-Position`` set to the last write's position."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import aiohttp

from services.auth import mint_token
from tests.support import TEST_SECRET

V = "/v1.0"
CHATS = f"{V}/service_agents/talk_chats"
MESSAGES = f"{V}/service_agents/talk_messages"


@dataclass
class Api:
    session: aiohttp.ClientSession
    write: str
    read: str
    position: int = 0  # the highest X-Talk-Position seen


@dataclass
class Agent:
    api: Api
    customer_id: UUID
    agent_id: UUID
    token: str
    headers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.headers = {"Authorization": f"Bearer {self.token}"}

    @property
    def id(self) -> str:
        return str(self.agent_id)

    async def command(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.api.session.request(method, self.api.write + path, json=body,
                                            headers=self.headers) as resp:
            payload = await resp.json(content_type=None)
            assert resp.status == 200, (method, path, resp.status, payload)
            self.api.position = max(self.api.position, int(resp.headers["X-Talk-Position"]))
            return payload

    async def query(self, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        headers = {**self.headers, "X-Talk-Min-Position": str(self.api.position)}
        async with self.api.session.get(self.api.read + path, params=params,
                                        headers=headers) as resp:
            payload = await resp.json(content_type=None)
            assert resp.status == 200, (path, resp.status, payload)
            return payload


def agent_with_secret(api: Api, customer_id: UUID, secret: str = TEST_SECRET) -> Agent:
    agent_id = uuid4()
    return Agent(api, customer_id, agent_id, mint_token(secret, customer_id, agent_id, 3600))


@dataclass(frozen=True)
class Tutorial:
    chat: dict[str, Any]
    hello: dict[str, Any]
    reply: dict[str, Any]


async def run_tutorial(alice: Agent, bob: Agent) -> Tutorial:
    """Alice opens a group talk and adds Bob; Bob says hello, Alice replies in the thread and
    Bob reacts to the reply; both list what they see."""
    chat = await alice.command("POST", CHATS, {"type": "group", "name": "Support",
                                               "detail": "the tutorial's talk"})
    assert (chat["type"], chat["name"], chat["member_count"]) == ("group", "Support", 1)
    joined = await alice.command("POST", f"{CHATS}/{chat['id']}/participants",
                                 {"owner_type": "agent", "owner_id": bob.id})
    assert (joined["owner_id"], joined["chat_id"]) == (bob.id, chat["id"])
    hello = await bob.command("POST", MESSAGES, {"chat_id": chat["id"], "type": "normal",
                                                 "text": "hello, anyone there?"})
    reply = await alice.command("POST", MESSAGES, {"chat_id": chat["id"], "type": "normal",
                                                   "text": "yes, how can I help?",
                                                   "parent_id": hello["id"]})
    assert reply["parent_id"] == hello["id"]
    reacted = await bob.command("POST", f"{MESSAGES}/{reply['id']}/reactions", {"emoji": "👍"})
    assert [(r["emoji"], r["owner_id"]) for r in reacted["metadata"]["reactions"]] == [("👍", bob.id)]

    listed = await alice.query(MESSAGES, {"chat_id": chat["id"]})
    by_id = {m["id"]: m for m in listed["result"]}
    assert by_id[hello["id"]]["text"] == "hello, anyone there?"
    assert by_id[reply["id"]]["parent_id"] == hello["id"]
    assert [(r["emoji"], r["owner_id"])
            for r in by_id[reply["id"]]["metadata"]["reactions"]] == [("👍", bob.id)]
    ours = [m["id"] for m in listed["result"] if m["owner_type"] == "agent"]
    assert ours == [reply["id"], hello["id"]]  # newest first
    talks = await bob.query(CHATS)
    assert [(t["id"], t["member_count"]) for t in talks["result"]] == [(chat["id"], 2)]
    return Tutorial(chat=chat, hello=hello, reply=reply)


async def subscribed_socket(session: aiohttp.ClientSession, base: str,
                            agent: Agent) -> aiohttp.ClientWebSocketResponse:
    """A WebSocket of ``agent`` on the gateway at ``base``, subscribed to its own topic."""
    socket = await session.ws_connect(f"{base}{V}/ws", headers=agent.headers)
    await socket.send_json({"type": "subscribe", "topics": [f"agent:{agent.id}"]})
    assert (await socket.receive_json(timeout=10))["type"] == "subscribed"
    return socket


async def frame_for(socket: aiohttp.ClientWebSocketResponse, event: str,
                    data_id: str) -> dict[str, Any]:
    """The first frame of ``event`` about the resource ``data_id`` (others are skipped)."""
    while True:
        frame = await socket.receive_json(timeout=15)
        if frame["type"] == event and frame["data"]["id"] == data_id:
            return frame


async def close_code(socket: aiohttp.ClientWebSocketResponse, timeout: float = 15.0) -> int:
    """Read past the frames still queued up to the close; its code."""
    while True:
        message = await socket.receive(timeout=timeout)
        if message.type is aiohttp.WSMsgType.CLOSE:
            return message.data
        assert message.type is aiohttp.WSMsgType.TEXT, message
