"""The audit endpoints: the role ``audit`` is required (403 without it); an auditor sees every
talk of their own customer, participant or not, and never another customer's (404); a
message's history lists every version with actor, time, position and event type; bad input
is a 400 problem."""

from __future__ import annotations

from uuid import uuid4

from events.position_token import parse_position
from tests.integration.audit.conftest import (
    AUDIT_CHATS,
    AUDIT_MESSAGES,
    CHATS,
    MESSAGES,
    Session,
)


async def _talk_with_history(session: Session, customer_id=None):
    alice = session.agent(customer_id)
    bob = session.agent(alice.customer_id)
    chat = await alice.command("POST", CHATS, {"type": "group", "name": "audited",
                                               "participants": [{"owner_type": "agent",
                                                                 "owner_id": bob.id}]})
    message = await alice.command("POST", MESSAGES, {"chat_id": chat["id"], "text": "v1"})
    await alice.command("PUT", f"{MESSAGES}/{message['id']}", {"text": "v2"})
    await bob.command("POST", f"{MESSAGES}/{message['id']}/reactions", {"emoji": "eyes"})
    await bob.command("DELETE", f"{MESSAGES}/{message['id']}/reactions", {"emoji": "eyes"})
    await alice.command("DELETE", f"{MESSAGES}/{message['id']}")
    return alice, bob, chat, message


async def test_an_auditor_sees_their_customers_talks_only(api):
    session = Session(api)
    alice, bob, chat, message = await _talk_with_history(session)
    _, _, other_chat, other_message = await _talk_with_history(session)  # another customer
    auditor = session.agent(alice.customer_id, roles=["audit"])

    # not a participant, and still sees the talk and the message's history
    await auditor.get(f"{CHATS}/{chat['id']}", status=403)
    state = await auditor.get(f"{AUDIT_CHATS}/{chat['id']}")
    assert state["talk"]["id"] == chat["id"]
    assert {p["owner_id"] for p in state["participants"]} == {alice.id, bob.id}
    history = await auditor.get(f"{AUDIT_MESSAGES}/{message['id']}/history")
    assert history["chat_id"] == chat["id"]

    # another customer's talk and message do not exist for them
    problem = await auditor.get(f"{AUDIT_CHATS}/{other_chat['id']}", status=404)
    assert "talk" in problem["detail"]
    await auditor.get(f"{AUDIT_CHATS}/{other_chat['id']}", {"at": "1"}, status=404)
    await auditor.get(f"{AUDIT_MESSAGES}/{other_message['id']}/history", status=404)
    await auditor.get(f"{AUDIT_CHATS}/{uuid4()}", status=404)
    await auditor.get(f"{AUDIT_MESSAGES}/{uuid4()}/history", status=404)
    await auditor.get(f"{AUDIT_MESSAGES}/{chat['id']}/history", status=404)  # a talk's id


async def test_without_the_audit_role_it_is_403(api):
    session = Session(api)
    alice, _, chat, message = await _talk_with_history(session)
    for agent in (alice, session.agent(alice.customer_id, roles=["admin"])):
        problem = await agent.get(f"{AUDIT_CHATS}/{chat['id']}", status=403)
        assert "audit" in problem["detail"]
        await agent.get(f"{AUDIT_MESSAGES}/{message['id']}/history", status=403)
        await agent.get(f"{AUDIT_CHATS}/{uuid4()}", {"at": "garbage"}, status=403)


async def test_a_messages_history_has_every_version(api):
    session = Session(api)
    alice, bob, chat, message = await _talk_with_history(session)
    auditor = session.agent(alice.customer_id, roles=["audit"])
    history = await auditor.get(f"{AUDIT_MESSAGES}/{message['id']}/history")
    entries = history["result"]
    assert [e["event_type"] for e in entries] == [
        "MessagePosted", "MessageEdited", "ReactionAdded", "ReactionRemoved", "MessageDeleted"]
    assert [e["version"] for e in entries] == [1, 2, 3, 4, 5]
    assert [e["actor"] for e in entries] == [
        {"type": "agent", "id": who} for who in (alice.id, alice.id, bob.id, bob.id, alice.id)]
    positions = [e["position"] for e in entries]
    assert positions == sorted(positions)
    assert positions[-1] <= parse_position(str(session.position)).position
    assert all(e["request_id"] and len(e["recorded_at"]) == 26 for e in entries)
    texts = [e["message"]["text"] for e in entries]
    assert texts == ["v1", "v2", "v2", "v2", ""]
    assert [len(e["message"]["metadata"]["reactions"]) for e in entries] == [0, 0, 1, 0, 0]
    assert [e["message"]["versions"] for e in entries] == [1, 2, 2, 2, 2]
    assert [e["deleted"] for e in entries] == [False] * 4 + [True]
    assert entries[1]["change"]["text"] == "v2"
    assert entries[2]["change"]["emoji"] == "eyes"
    assert entries[-1]["message"]["tm_delete"] != ""


async def test_bad_input_is_a_400_problem(api):
    session = Session(api)
    alice, _, chat, _ = await _talk_with_history(session)
    auditor = session.agent(alice.customer_id, roles=["audit"])
    for bad in ("yesterday", "2024-13-01 00:00:00.000000", "-3", ""):
        problem = await auditor.get(f"{AUDIT_CHATS}/{chat['id']}", {"at": bad}, status=400)
        assert problem["errors"][0]["field"] == "at"
    # a position no committed event holds
    await auditor.get(f"{AUDIT_CHATS}/{chat['id']}", {"at": str(2**62)}, status=400)
    await auditor.get(f"{AUDIT_CHATS}/not-a-uuid", status=404)  # like every path id: no such resource
    await auditor.get(f"{AUDIT_MESSAGES}/not-a-uuid/history", status=404)
    # before the talk existed
    problem = await auditor.get(f"{AUDIT_CHATS}/{chat['id']}", {"at": "2000-01-01"}, status=404)
    assert "did not exist" in problem["detail"]
    # position 0: before anything
    await auditor.get(f"{AUDIT_CHATS}/{chat['id']}", {"at": "0"}, status=404)
