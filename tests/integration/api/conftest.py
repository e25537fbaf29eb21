"""The Talk API as the HTTP tests see it: agents that call it with their own token, problem
checks that also prove the event store unchanged, and read-your-writes on every GET.

One API and one projector serve all the tests of a module (each test works with customers of
its own, so they do not see each other); a test that stops the projector uses the
function-scoped ``api`` and ``projector`` fixtures instead."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from projector.runner import Projector
from services.db import Database, make_pool
from services.http.problems import PROBLEM_JSON
from services.settings import Settings
from services.up import build_up_app
from tests.support import bearer

V = "/v1.0"
CHATS = f"{V}/service_agents/talk_chats"
MESSAGES = f"{V}/service_agents/talk_messages"

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$")
CHAT_FIELDS = {"id", "customer_id", "type", "name", "detail", "member_count", "tm_create",
               "tm_update", "tm_delete", "status"}
# What a GET of talks adds: the talk as the caller sees it (Talk 1.1).
VIEWER_FIELDS = {"unread_count", "mention_count", "last_message", "tm_last_message"}
PARTICIPANT_FIELDS = {"id", "customer_id", "owner_type", "owner_id", "chat_id", "tm_joined",
                      "last_read_message_id", "tm_read"}
MESSAGE_FIELDS = {"id", "customer_id", "owner_type", "owner_id", "chat_id", "parent_id", "type",
                  "text", "medias", "metadata", "tm_create", "tm_update", "tm_delete", "mentions",
                  "reply_count", "tm_last_reply"}


def without_viewer(talk: dict) -> dict:
    """A Talk as a GET answers it, less the caller's own fields (as commands answer it)."""
    return {k: v for k, v in talk.items() if k not in VIEWER_FIELDS}
REACTION_FIELDS = {"emoji", "owner_type", "owner_id", "tm_create"}
PROBLEM_FIELDS = {"type", "title", "status", "detail", "request_id"}


def is_timestamp(value: Any) -> bool:
    return isinstance(value, str) and bool(TIMESTAMP.match(value))


async def event_count(db: Database) -> int:
    async with db.statement("test_event_count") as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM events")
        return (await cur.fetchone())["n"]


class TalkClient:
    """One running API (command + query on one port) and the database behind it.

    ``position`` is the highest ``X-Talk-Position`` any command answered; every GET sends it
    as ``X-Talk-Min-Position`` so a test reads its own writes."""

    def __init__(self, client: TestClient, db: Database) -> None:
        self.client = client
        self.db = db
        self.position = 0

    def agent(self, customer_id: UUID | None = None) -> Agent:
        """A new agent; of a new customer unless ``customer_id`` is given."""
        return Agent(self, customer_id or uuid4(), uuid4())

    async def event_count(self) -> int:
        return await event_count(self.db)

    def saw(self, resp: ClientResponse) -> None:
        raw = resp.headers.get("X-Talk-Position")
        if resp.status == 200 and raw:
            self.position = max(self.position, int(raw))


class Agent:
    def __init__(self, talk: TalkClient, customer_id: UUID, agent_id: UUID) -> None:
        self.talk = talk
        self.customer_id = customer_id
        self.agent_id = agent_id
        self.id = str(agent_id)
        self.headers = bearer(customer_id, agent_id)

    def colleague(self) -> Agent:
        """Another agent of the same customer."""
        return self.talk.agent(self.customer_id)

    def via(self, talk: TalkClient) -> Agent:
        """The same agent calling another running API (another process, as it were)."""
        return Agent(talk, self.customer_id, self.agent_id)

    async def request(self, method: str, path: str, *, json: Any = None, params: Any = None,
                      headers: dict[str, str] | None = None, data: bytes | None = None
                      ) -> ClientResponse:
        merged = dict(self.headers)
        if method == "GET" and self.talk.position:
            merged["X-Talk-Min-Position"] = str(self.talk.position)
        merged.update(headers or {})
        kwargs: dict[str, Any] = {"headers": merged, "params": params}
        if json is not None:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
        resp = await self.talk.client.request(method, path, **kwargs)
        await resp.read()
        self.talk.saw(resp)
        return resp

    async def ok(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON body of a 200 answer (and, for a command, its ``X-Talk-Position``)."""
        resp = await self.request(method, path, **kwargs)
        assert resp.status == 200, f"{method} {path}: {resp.status} {await resp.text()}"
        assert resp.content_type == "application/json"
        if method != "GET":
            assert int(resp.headers["X-Talk-Position"]) > 0
        return await resp.json()

    async def problem(self, status: int, method: str, path: str, **kwargs: Any) -> dict:
        """Assert a problem+json answer with ``status`` that appended no event."""
        before = await self.talk.event_count()
        resp = await self.request(method, path, **kwargs)
        body_text = await resp.text()
        assert resp.status == status, f"{method} {path}: {resp.status} {body_text}"
        assert resp.content_type == PROBLEM_JSON, body_text
        body = await resp.json(content_type=None)
        assert PROBLEM_FIELDS <= set(body), body
        assert body["status"] == status
        assert body["request_id"] == resp.headers["X-Request-ID"]
        assert await self.talk.event_count() == before, f"{method} {path} appended events"
        return body

    # --- conveniences ----------------------------------------------------------------------

    async def create_talk(self, type_: str = "group", members: tuple[Agent, ...] = (),
                          **fields: Any) -> dict:
        body = {"type": type_, **fields}
        if members:
            body["participants"] = [{"owner_type": "agent", "owner_id": m.id} for m in members]
        return await self.ok("POST", CHATS, json=body)

    async def add(self, chat: dict | str, agent: Agent) -> dict:
        return await self.ok("POST", f"{CHATS}/{_id(chat)}/participants",
                             json={"owner_type": "agent", "owner_id": agent.id})

    async def remove(self, chat: dict | str, participant: dict | str) -> dict:
        return await self.ok("DELETE", f"{CHATS}/{_id(chat)}/participants/{_id(participant)}")

    async def participants(self, chat: dict | str) -> list[dict]:
        return (await self.ok("GET", f"{CHATS}/{_id(chat)}/participants"))["result"]

    async def participant_of(self, chat: dict | str, agent: Agent) -> dict:
        return next(p for p in await self.participants(chat) if p["owner_id"] == agent.id)

    async def post(self, chat: dict | str, text: str = "hello", **fields: Any) -> dict:
        return await self.ok("POST", MESSAGES, json={"chat_id": _id(chat), "type": "normal",
                                                     "text": text, **fields})

    async def react(self, message: dict | str, emoji: str) -> dict:
        return await self.ok("POST", f"{MESSAGES}/{_id(message)}/reactions", json={"emoji": emoji})

    async def messages(self, chat: dict | str, **params: Any) -> list[dict]:
        """Every message of the talk (all pages), newest first."""
        out: list[dict] = []
        token = ""
        while True:
            page = await self.ok("GET", MESSAGES, params={"chat_id": _id(chat), "page_token": token,
                                                          **params})
            out += page["result"]
            token = page["next_page_token"]
            if not token:
                return out

    async def get_chat(self, chat: dict | str) -> dict:
        return await self.ok("GET", f"{CHATS}/{_id(chat)}")

    async def get_message(self, message: dict | str) -> dict:
        return await self.ok("GET", f"{MESSAGES}/{_id(message)}")


def _id(thing: dict | str) -> str:
    return thing["id"] if isinstance(thing, dict) else str(thing)


PROJECTOR_POLL = 0.05  # seconds; the projector also wakes on NOTIFY
# The projector reads below the oldest transaction running anywhere in the PostgreSQL
# cluster, so a long transaction of another database on a shared test server holds it back.
# Reads here may wait that long; the 503 after the wait is tested with a short timeout.
READ_YOUR_WRITES_TIMEOUT = 20.0


def api_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"read_your_writes_timeout": READ_YOUR_WRITES_TIMEOUT})


@pytest.fixture(scope="module")
async def module_talk(settings) -> AsyncIterator[TalkClient]:
    """The command and query APIs on one port (as ``talk up`` serves them) and a projector,
    for one test module."""
    projector = Projector(settings.model_copy(update={"projector_poll_interval": PROJECTOR_POLL}))
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    pool = make_pool(settings, min_size=1, max_size=4, name="talk-api-tests")
    client = TestClient(TestServer(build_up_app(api_settings(settings))))
    try:
        await asyncio.wait_for(projector.active.wait(), 15)
        await pool.open()
        await client.start_server()
        yield TalkClient(client, Database(pool))
    finally:
        await client.close()
        await pool.close()
        stop.set()
        await asyncio.wait_for(task, 15)


@pytest.fixture()
def talk(module_talk: TalkClient) -> TalkClient:
    return module_talk
