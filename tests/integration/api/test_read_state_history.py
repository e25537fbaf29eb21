"""The new events and read columns in the history's tools: a rebuild from the history gives
the live read tables (talk status and counters, message places and mentions, participants'
markers), and the audit's state of a talk at a moment shows the markers the query API
showed."""

from __future__ import annotations

from projector.verify import verify_read_model
from tests.integration.api.conftest import CHATS, MESSAGES, V
from tests.integration.rebuild.conftest import Quiet
from tests.support import bearer


async def test_verify_and_the_audit_cover_lifecycle_reads_and_mentions(talk):
    alice = talk.agent()
    bob, carol = alice.colleague(), alice.colleague()
    chat = await alice.create_talk("group", members=(bob, carol))
    m1 = await alice.post(chat, f"hi <@{bob.id}>")
    await bob.post(chat, f"<@{carol.id}> <@{alice.id}>")
    await carol.ok("POST", f"{CHATS}/{chat['id']}/read", json={"message_id": m1["id"]})
    await alice.ok("PUT", f"{MESSAGES}/{m1['id']}", json={"text": f"hi <@{carol.id}>"})
    await bob.ok("POST", f"{CHATS}/{chat['id']}/read", json={})
    await alice.ok("POST", f"{CHATS}/{chat['id']}/close")
    await carol.ok("POST", f"{CHATS}/{chat['id']}/reopen")
    pair = await alice.ok("POST", CHATS, json={
        "type": "normal", "participants": [{"owner_type": "agent", "owner_id": bob.id}]})
    members = {p["owner_id"]: p for p in await alice.participants(pair)}
    await alice.remove(pair, members[bob.id])
    await alice.remove(pair, members[alice.id])  # closes it (all_left)
    shown = await alice.participants(chat)
    assert {p["owner_id"]: p["last_read_message_id"] for p in shown}[carol.id] == m1["id"]

    report = await verify_read_model(talk.db, progress=Quiet)
    assert report.identical, "\n".join(map(str, report.differences))
    assert report.rows["rm_participants"] > 0

    auditor = talk.agent(alice.customer_id)
    resp = await talk.client.get(f"{V}/audit/talk_chats/{chat['id']}",
                                 headers=bearer(auditor.customer_id, auditor.agent_id,
                                                roles=["audit"]))
    assert resp.status == 200, await resp.text()
    state = await resp.json()
    assert state["talk"]["status"] == "active"
    assert state["participants"] == shown
