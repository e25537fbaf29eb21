"""Talk 1.1 lifecycle: close, reopen, closing by itself when the last participant leaves,
what a closed talk refuses (409 talk-closed, nothing stored) and serves (every read), and the
status filter of the talk list."""

from __future__ import annotations

from events import catalogue as ev
from tests.integration.api.conftest import CHATS, MESSAGES, without_viewer

CLOSED = "https://talk.dev/problems/talk-closed"


async def _events_of(talk, chat_id: str, type_: str) -> list[dict]:
    async with talk.db.statement("test_events_of") as conn:
        cur = await conn.execute(
            "SELECT data FROM events WHERE stream_id = %s AND type = %s ORDER BY version",
            (ev.chat_stream(chat_id), type_))
        return [row["data"] for row in await cur.fetchall()]


async def test_close_and_reopen_answer_the_talk_with_its_status(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk("group", members=(bob,))
    assert chat["status"] == "active"
    closed = await alice.ok("POST", f"{CHATS}/{chat['id']}/close")
    assert closed["status"] == "closed" and closed["tm_update"] >= chat["tm_create"]
    assert without_viewer(await bob.get_chat(chat)) == closed
    before = await talk.event_count()
    again = await bob.ok("POST", f"{CHATS}/{chat['id']}/close")  # a no-op
    assert again == closed and await talk.event_count() == before
    reopened = await bob.ok("POST", f"{CHATS}/{chat['id']}/reopen")
    assert reopened["status"] == "active" and reopened["member_count"] == 2
    assert (await alice.get_chat(chat))["status"] == "active"
    before = await talk.event_count()
    assert (await bob.ok("POST", f"{CHATS}/{chat['id']}/reopen"))["status"] == "active"
    assert await talk.event_count() == before
    assert [e["reason"] for e in await _events_of(talk, chat["id"], "ChatClosed")] == ["closed"]
    await alice.post(chat, "open again")


async def test_a_closed_talk_refuses_changes_and_serves_reads(talk):
    alice = talk.agent()
    bob, carol = alice.colleague(), alice.colleague()
    chat = await alice.create_talk("group", members=(bob,))
    message = await alice.post(chat, "before closing")
    await bob.react(message, "👍")
    await bob.ok("POST", f"{CHATS}/{chat['id']}/close")

    refusals = [
        ("POST", MESSAGES, {"chat_id": chat["id"], "type": "normal", "text": "x"}),
        ("POST", f"/v1.0/talks/{chat['id']}/messages", {"text": "x"}),
        ("PUT", f"{MESSAGES}/{message['id']}", {"text": "edited"}),
        ("POST", f"{MESSAGES}/{message['id']}/reactions", {"emoji": "🎉"}),
        ("DELETE", f"{MESSAGES}/{message['id']}/reactions", {"emoji": "👍"}),
        ("POST", f"{CHATS}/{chat['id']}/participants", {"owner_type": "agent", "owner_id": carol.id}),
    ]
    for method, path, body in refusals:
        problem = await alice.problem(409, method, path, json=body)  # asserts nothing stored
        assert problem["type"] == CLOSED, (method, path, problem)

    assert (await alice.get_chat(chat))["status"] == "closed"
    assert [m["id"] for m in await alice.messages(chat)][0] == message["id"]
    assert (await alice.get_message(message))["text"] == "before closing"
    assert len(await alice.participants(chat)) == 2
    listed = await alice.ok("GET", CHATS, params={"status": "closed"})
    assert [c["id"] for c in listed["result"]] == [chat["id"]]
    # reading, renaming, removing members and deleting still work
    await bob.ok("POST", f"{CHATS}/{chat['id']}/read", json={})
    await alice.ok("PUT", f"{CHATS}/{chat['id']}", json={"name": "archived"})


async def test_the_talk_closes_when_its_last_participant_leaves_and_a_former_one_reopens(talk):
    alice = talk.agent()
    bob, carol = alice.colleague(), alice.colleague()
    chat = await alice.create_talk("group", members=(bob,))
    members = {p["owner_id"]: p for p in await alice.participants(chat)}
    await alice.remove(chat, members[bob.id])
    assert (await alice.get_chat(chat))["status"] == "active"
    await alice.remove(chat, members[alice.id])
    assert [e["reason"] for e in await _events_of(talk, chat["id"], "ChatClosed")] == ["all_left"]
    # nobody is in it: only someone who was there when it closed may reopen it
    await carol.problem(403, "POST", f"{CHATS}/{chat['id']}/reopen")
    await bob.problem(403, "POST", f"{CHATS}/{chat['id']}/reopen")
    reopened = await alice.ok("POST", f"{CHATS}/{chat['id']}/reopen")
    assert reopened["status"] == "active" and reopened["member_count"] == 1
    assert [p["owner_id"] for p in await alice.participants(chat)] == [alice.id]
    await alice.post(chat, "back")


async def test_close_rules(talk):
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk("group")
    await bob.problem(403, "POST", f"{CHATS}/{chat['id']}/close")
    await talk.agent().problem(404, "POST", f"{CHATS}/{chat['id']}/close")
    await bob.problem(403, "POST", f"{CHATS}/{chat['id']}/reopen")
    await alice.ok("DELETE", f"{CHATS}/{chat['id']}")
    await alice.problem(409, "POST", f"{CHATS}/{chat['id']}/close")


async def test_the_list_filters_by_status(talk):
    alice = talk.agent()
    open_one = await alice.create_talk("group", name="open")
    closed_one = await alice.create_talk("group", name="closed")
    await alice.ok("POST", f"{CHATS}/{closed_one['id']}/close")

    async def ids(**params) -> list[str]:
        return [c["id"] for c in (await alice.ok("GET", CHATS, params=params))["result"]]

    assert await ids() == [closed_one["id"], open_one["id"]]
    assert await ids(status="active") == [open_one["id"]]
    assert await ids(status="closed") == [closed_one["id"]]
    await alice.problem(400, "GET", CHATS, params={"status": "archived"})
