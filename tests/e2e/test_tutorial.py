"""The product docs' tutorial, end to end over HTTP against ``talk up`` running as its own
process: create a talk, add a participant, send a message, reply, react, list, remove the
participant, delete the talk. Every answer is checked field by field."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import aiohttp
import pytest

from services.auth import mint_token
from tests.e2e.processes import TalkProcess, clean_env, talk_processes
from tests.support import TEST_SECRET

V = "/v1.0"
CHATS = f"{V}/service_agents/talk_chats"
MESSAGES = f"{V}/service_agents/talk_messages"
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$")
PROBLEM_JSON = "application/problem+json"


VIEWER_FIELDS = ("unread_count", "mention_count", "last_message", "tm_last_message")


def talk_of(seen: dict) -> dict:
    """A talk as a GET answers it, less the caller's own view of it (Talk 1.1)."""
    return {k: v for k, v in seen.items() if k not in VIEWER_FIELDS}


def ts(value: Any) -> str:
    assert isinstance(value, str) and TIMESTAMP.match(value), value
    return value


class Client:
    """One agent calling ``talk up``; GETs wait for the last write (``X-Talk-Min-Position``)."""

    position = 0  # shared by every client of the test: the highest X-Talk-Position seen

    def __init__(self, session: aiohttp.ClientSession, base: str, customer_id: UUID,
                 *, in_query: bool = False) -> None:
        self.session, self.base, self.customer_id = session, base, customer_id
        self.agent_id = uuid4()
        self.id = str(self.agent_id)
        token = mint_token(TEST_SECRET, customer_id, self.agent_id, 600)
        # The docs show both: the token as ?token= and as a bearer header.
        self.params = {"token": token} if in_query else {}
        self.headers = {} if in_query else {"Authorization": f"Bearer {token}"}

    async def call(self, method: str, path: str, body: Any = None,
                   params: dict[str, str] | None = None) -> tuple[int, str, Any]:
        headers = dict(self.headers)
        if method == "GET":
            headers["X-Talk-Min-Position"] = str(Client.position)
        async with self.session.request(method, self.base + path, json=body, headers=headers,
                                        params={**self.params, **(params or {})}) as resp:
            payload = await resp.json(content_type=None)
            if method != "GET" and resp.status == 200:
                Client.position = max(Client.position, int(resp.headers["X-Talk-Position"]))
            return resp.status, resp.content_type, payload

    async def ok(self, method: str, path: str, body: Any = None,
                 params: dict[str, str] | None = None) -> Any:
        status, ctype, payload = await self.call(method, path, body, params)
        assert (status, ctype) == (200, "application/json"), (method, path, status, payload)
        return payload


@pytest.fixture()
async def talk_up(tmp_path: Path, database_url: str):
    """``talk up`` on a free port against the session's database; its base URL."""
    # A long transaction of another database on a shared test server holds the projector
    # back (it reads below the cluster's oldest running transaction): reads may wait for it.
    env = clean_env(database_url=database_url, jwt_secret=TEST_SECRET, log_level="WARNING",
                    read_your_writes_timeout="20")
    async with talk_processes() as running:
        up = await TalkProcess.start("up", "--host", "127.0.0.1", "--port", "0", env=env,
                                     cwd=tmp_path)
        running.append(up)
        base = await up.ready_url()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/readyz") as resp:
                assert resp.status == 200, up.output()
            yield session, base
        assert await up.stop() == 0, up.output()


async def test_the_tutorial(talk_up):
    session, base = talk_up
    customer = uuid4()
    alice = Client(session, base, customer)
    bob = Client(session, base, customer, in_query=True)
    cid = str(customer)

    # 1. Alice creates a talk.
    chat = await alice.ok("POST", CHATS, {"type": "group", "name": "Support Team",
                                          "detail": "Tier 2 escalations"})
    assert chat == {"id": chat["id"], "customer_id": cid, "type": "group", "name": "Support Team",
                    "detail": "Tier 2 escalations", "member_count": 1,
                    "tm_create": ts(chat["tm_create"]), "tm_update": chat["tm_create"],
                    "tm_delete": "", "status": "active"}
    UUID(chat["id"])
    chat_path = f"{CHATS}/{chat['id']}"
    assert talk_of(await alice.ok("GET", chat_path)) == chat

    # 2. She adds Bob.
    bob_p = await alice.ok("POST", f"{chat_path}/participants",
                           {"owner_type": "agent", "owner_id": bob.id})
    assert bob_p == {"id": bob_p["id"], "customer_id": cid, "owner_type": "agent",
                     "owner_id": bob.id, "chat_id": chat["id"], "tm_joined": ts(bob_p["tm_joined"]),
                     "last_read_message_id": "", "tm_read": ""}
    assert bob_p["tm_joined"] >= chat["tm_create"]
    participants = await bob.ok("GET", f"{chat_path}/participants")
    assert participants["next_page_token"] == ""
    alice_p = next(p for p in participants["result"] if p["owner_id"] == alice.id)
    assert alice_p == {"id": alice_p["id"], "customer_id": cid, "owner_type": "agent",
                       "owner_id": alice.id, "chat_id": chat["id"], "tm_joined": chat["tm_create"],
                       "last_read_message_id": "", "tm_read": ""}
    assert sorted(participants["result"], key=lambda p: p["owner_id"]) == sorted(
        [alice_p, bob_p], key=lambda p: p["owner_id"])
    joined = talk_of(await bob.ok("GET", chat_path))
    assert joined == {**chat, "member_count": 2, "tm_update": bob_p["tm_joined"]}

    # 3. Alice sends a message with an attachment.
    media = {"type": "image/png", "url": "https://cdn.example.com/screen.png", "name": "screen.png"}
    hello = await alice.ok("POST", MESSAGES, {"chat_id": chat["id"], "type": "normal",
                                              "text": "Can someone look at this?",
                                              "medias": [media]})
    assert hello == {"id": hello["id"], "customer_id": cid, "owner_type": "agent",
                     "owner_id": alice.id, "chat_id": chat["id"], "parent_id": "", "type": "normal",
                     "text": "Can someone look at this?", "medias": [media],
                     "metadata": {"reactions": []}, "mentions": [],
                     "reply_count": 0, "tm_last_reply": "",
                     "tm_create": ts(hello["tm_create"]),
                     "tm_update": hello["tm_create"], "tm_delete": ""}

    # 4. Bob replies in the thread.
    reply = await bob.ok("POST", MESSAGES, {"chat_id": chat["id"], "type": "normal",
                                            "text": "On it.", "parent_id": hello["id"]})
    assert reply == {"id": reply["id"], "customer_id": cid, "owner_type": "agent",
                     "owner_id": bob.id, "chat_id": chat["id"], "parent_id": hello["id"],
                     "type": "normal", "text": "On it.", "medias": [],
                     "metadata": {"reactions": []}, "mentions": [],
                     "reply_count": 0, "tm_last_reply": "",
                     "tm_create": ts(reply["tm_create"]),
                     "tm_update": reply["tm_create"], "tm_delete": ""}
    assert reply["tm_create"] >= hello["tm_create"]

    # 5. Alice reacts to the reply.
    reacted = await alice.ok("POST", f"{MESSAGES}/{reply['id']}/reactions", {"emoji": "thumbsup"})
    [reaction] = reacted["metadata"]["reactions"]
    assert reaction == {"emoji": "thumbsup", "owner_type": "agent", "owner_id": alice.id,
                        "tm_create": ts(reaction["tm_create"])}
    assert reacted == {**reply, "metadata": {"reactions": [reaction]},
                       "tm_update": reaction["tm_create"]}

    # 6. Both list the talk's messages: newest first, with the system messages of the joins.
    listed = await bob.ok("GET", MESSAGES, params={"chat_id": chat["id"]})
    assert listed["next_page_token"] == ""
    newest, older, *joins = listed["result"]
    # Alice's message is the thread's parent now: one reply, Bob's.
    assert (newest, older) == (reacted, {**hello, "reply_count": 1,
                                         "tm_last_reply": reply["tm_create"]})
    assert len(joins) == 2
    assert joins[0] == {"id": joins[0]["id"], "customer_id": cid, "owner_type": "system",
                        "owner_id": bob.id, "chat_id": chat["id"], "parent_id": "",
                        "type": "system", "text": joins[0]["text"], "medias": [],
                        "metadata": {"reactions": []}, "mentions": [],
                        "reply_count": 0, "tm_last_reply": "",
                        "tm_create": bob_p["tm_joined"],
                        "tm_update": bob_p["tm_joined"], "tm_delete": ""}
    assert joins[1]["owner_type"] == "system" and joins[1]["owner_id"] == alice.id
    assert joins[1]["tm_create"] == chat["tm_create"] and "joined" in joins[1]["text"]
    assert await alice.ok("GET", MESSAGES, params={"chat_id": chat["id"]}) == listed
    thread = await alice.ok("GET", MESSAGES, params={"chat_id": chat["id"], "parent_id": hello["id"]})
    assert thread == {"result": [reacted], "next_page_token": ""}
    assert await alice.ok("GET", f"{MESSAGES}/{reply['id']}") == reacted
    mine = await bob.ok("GET", CHATS)
    # Bob's view: Alice's message came after he joined, his reply marked the talk read.
    assert mine == {"result": [{**joined, "unread_count": 0,
                                "mention_count": 0, "last_message": reacted,
                                "tm_last_message": reply["tm_create"]}], "next_page_token": ""}

    # 7. Alice removes Bob: he is answered as he was, a system message says he left.
    removed = await alice.ok("DELETE", f"{chat_path}/participants/{bob_p['id']}")
    assert removed == bob_p
    status, ctype, problem = await bob.call("GET", chat_path)
    assert (status, ctype, problem["status"]) == (403, PROBLEM_JSON, 403)
    left = (await alice.ok("GET", MESSAGES, params={"chat_id": chat["id"], "page_size": "1"}))
    [left_message] = left["result"]
    assert left["next_page_token"] != ""
    assert (left_message["owner_type"], left_message["owner_id"], left_message["type"]) == (
        "system", bob.id, "system")
    assert "left" in left_message["text"] and left_message["tm_create"] >= reaction["tm_create"]
    after = talk_of(await alice.ok("GET", chat_path))
    assert after == {**chat, "member_count": 1, "tm_update": after["tm_update"]}
    assert after["tm_update"] >= bob_p["tm_joined"] and after["tm_update"] == left_message["tm_create"]
    assert [p["owner_id"] for p in (await alice.ok("GET", f"{chat_path}/participants"))["result"]] \
        == [alice.id]

    # 8. Alice deletes the talk: soft, it still reads with tm_delete set.
    deleted = await alice.ok("DELETE", chat_path)
    assert deleted == {**chat, "member_count": 1, "tm_update": ts(deleted["tm_delete"]),
                       "tm_delete": ts(deleted["tm_delete"])}
    assert talk_of(await alice.ok("GET", chat_path)) == deleted
    assert await alice.ok("GET", CHATS) == {"result": [], "next_page_token": ""}
    status, ctype, problem = await alice.call("POST", MESSAGES, {"chat_id": chat["id"], "text": "hi"})
    assert (status, ctype, problem["status"]) == (409, PROBLEM_JSON, 409)
