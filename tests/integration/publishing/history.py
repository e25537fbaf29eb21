"""A varied history made through the API: every kind of event, in two talks."""

from __future__ import annotations

from uuid import UUID, uuid4

from aiohttp.test_utils import TestClient

from tests.integration.publishing.caller import CHATS, MESSAGES, Caller


async def make_history(client: TestClient, customer: UUID) -> int:
    """Returns the position of the last event."""
    a, b, c, d = uuid4(), uuid4(), uuid4(), uuid4()
    alice, bob = Caller(client, customer, a), Caller(client, customer, b)
    chat, _ = await alice.create_group(b, c, name="first")
    other, _ = await bob.create_group(a, name="second")
    await alice.command("PUT", f"{CHATS}/{chat['id']}", {"detail": "about things"})
    message, _ = await alice.post(chat["id"], "hello")
    reply, _ = await bob.post(chat["id"], "hi", parent_id=message["id"])
    await bob.post(other["id"], "elsewhere")
    await alice.command("PUT", f"{MESSAGES}/{message['id']}", {"text": "hello, all"})
    await bob.command("POST", f"{MESSAGES}/{message['id']}/reactions", {"emoji": "👍"})
    await alice.command("POST", f"{MESSAGES}/{message['id']}/reactions", {"emoji": "👍"})
    await bob.command("DELETE", f"{MESSAGES}/{message['id']}/reactions?emoji=👍")
    added, _ = await alice.command("POST", f"{CHATS}/{chat['id']}/participants",
                                   {"owner_type": "agent", "owner_id": str(d)})
    await alice.command("DELETE", f"{CHATS}/{chat['id']}/participants/{added['id']}")
    await bob.command("DELETE", f"{MESSAGES}/{reply['id']}")
    _, last = await bob.command("DELETE", f"{CHATS}/{other['id']}")
    return last
