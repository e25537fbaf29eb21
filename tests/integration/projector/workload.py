"""A workload through the HTTP API that drives every event type of the catalogue, in the
order one talk's life goes: created with members, renamed, closed and reopened, posts and
a reply, an edit, reactions added and removed, read, a member added and one removed, a
message deleted, the talk deleted. A new event type in ``events/catalogue.py`` that this life does not produce is
named by :func:`missing_event_types`, so the crash tests fail until it is driven here."""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID, uuid4

from aiohttp.test_utils import TestClient

from events.catalogue import EVENT_TYPES
from tests.integration.publishing.caller import CHATS, MESSAGES, Caller


async def one_talk_life(client: TestClient, customer: UUID) -> int:
    """One talk from creation to deletion, every event type on the way; returns the
    position of its last event."""
    a, b, c, d = uuid4(), uuid4(), uuid4(), uuid4()
    alice, bob, carol = Caller(client, customer, a), Caller(client, customer, b), Caller(client, customer, c)
    chat, _ = await alice.create_group(b, c, name="life")  # ChatCreated, ParticipantJoined
    chat_id = chat["id"]
    await alice.command("PUT", f"{CHATS}/{chat_id}", {"name": "life, renamed"})  # ChatUpdated
    if "ChatClosed" in EVENT_TYPES:  # Talk 1.1
        await alice.command("POST", f"{CHATS}/{chat_id}/close")  # ChatClosed
        await bob.command("POST", f"{CHATS}/{chat_id}/reopen")  # ChatReopened
    message, _ = await alice.post(chat_id, "hello")  # MessagePosted
    reply, _ = await bob.post(chat_id, "hi", parent_id=message["id"])
    path = f"{MESSAGES}/{message['id']}"
    await alice.command("PUT", path, {"text": "hello, all"})  # MessageEdited
    await bob.command("POST", f"{path}/reactions", {"emoji": "👍"})  # ReactionAdded
    await carol.command("POST", f"{path}/reactions", {"emoji": "👍"})
    await alice.command("POST", f"{path}/reactions", {"emoji": "🎉"})
    await bob.command("DELETE", f"{path}/reactions?emoji=👍")  # ReactionRemoved
    if "ChatRead" in EVENT_TYPES:  # Talk 1.1
        await carol.command("POST", f"{CHATS}/{chat_id}/read", {"message_id": reply["id"]})  # ChatRead
    added, _ = await alice.command("POST", f"{CHATS}/{chat_id}/participants",
                                   {"owner_type": "agent", "owner_id": str(d)})
    await alice.command("DELETE", f"{CHATS}/{chat_id}/participants/{added['id']}")  # ParticipantLeft
    await bob.command("DELETE", f"{MESSAGES}/{reply['id']}")  # MessageDeleted
    _, last = await alice.command("DELETE", f"{CHATS}/{chat_id}")  # ChatDeleted
    return last


def missing_event_types(seen: Iterable[str]) -> set[str]:
    """The catalogue's event types not in ``seen``."""
    return set(EVENT_TYPES) - set(seen)
