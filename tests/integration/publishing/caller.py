"""An agent calling the API in tests: commands answer (body, position); reads wait for the
projection to reach a position (``X-Talk-Min-Position``)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from aiohttp.test_utils import TestClient

from events.position_token import parse_position
from tests.support import bearer, wait_until

CHATS = "/v1.0/service_agents/talk_chats"
MESSAGES = "/v1.0/service_agents/talk_messages"


class Caller:
    def __init__(self, client: TestClient, customer_id: UUID, agent_id: UUID) -> None:
        self.client = client
        self.customer_id = customer_id
        self.agent_id = agent_id
        self.headers = bearer(customer_id, agent_id)

    async def command(self, method: str, path: str, body: Any = None) -> tuple[dict, int]:
        resp = await self.client.request(method, path, json=body, headers=self.headers)
        assert resp.status == 200, f"{method} {path}: {resp.status} {await resp.text()}"
        # the event's own position (the token's), comparable with the store's positions
        return await resp.json(), parse_position(resp.headers["X-Talk-Position"]).position

    async def read(self, path: str, min_position: int) -> dict:
        """GET once the projection has reached ``min_position`` (asked again while the
        answer is 503: on a busy server the projection may lag more than the API waits)."""
        headers = {**self.headers, "X-Talk-Min-Position": str(min_position)}

        async def answer() -> dict | None:
            resp = await self.client.get(path, headers=headers)
            if resp.status == 503:
                return None
            assert resp.status == 200, f"GET {path}: {resp.status} {await resp.text()}"
            return await resp.json()

        return await wait_until(answer, timeout=30, what=f"GET {path} at {min_position}")

    async def create_group(self, *members: UUID, name: str = "talk") -> tuple[dict, int]:
        return await self.command("POST", CHATS, {
            "type": "group", "name": name,
            "participants": [{"owner_type": "agent", "owner_id": str(m)} for m in members]})

    async def post(self, chat_id: str, text: str, **extra: Any) -> tuple[dict, int]:
        return await self.command("POST", MESSAGES, {"chat_id": chat_id, "type": "normal",
                                                     "text": text, **extra})
