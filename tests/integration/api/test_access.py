"""Who may do what: a non-participant of the same customer gets 403 on every endpoint, another
customer gets 404 on every endpoint (existence does not leak), and two customers' data stay
apart everywhere."""

from __future__ import annotations

from tests.integration.api.conftest import CHATS, MESSAGES, Agent, V


async def _scene(talk):
    """Alice's talk with Bob, a message and a reply, Bob's reaction."""
    alice = talk.agent()
    bob = alice.colleague()
    chat = await alice.create_talk(members=(bob,), name="private")
    message = await alice.post(chat, "private words")
    await bob.post(chat, "reply", parent_id=message["id"])
    await bob.react(message, "thumbsup")
    bob_p = await alice.participant_of(chat, bob)
    return alice, bob, chat, message, bob_p


def _every_endpoint(chat: dict, message: dict, participant: dict, outsider: Agent):
    cid, mid, pid = chat["id"], message["id"], participant["id"]
    return [
        ("GET", f"{CHATS}/{cid}", {}),
        ("PUT", f"{CHATS}/{cid}", {"json": {"name": "mine now"}}),
        ("DELETE", f"{CHATS}/{cid}", {}),
        ("GET", f"{CHATS}/{cid}/participants", {}),
        ("POST", f"{CHATS}/{cid}/participants", {"json": {"owner_type": "agent", "owner_id": outsider.id}}),
        ("DELETE", f"{CHATS}/{cid}/participants/{pid}", {}),
        ("POST", MESSAGES, {"json": {"chat_id": cid, "type": "normal", "text": "let me in"}}),
        ("POST", MESSAGES, {"json": {"chat_id": cid, "text": "re", "parent_id": mid}}),
        ("GET", MESSAGES, {"params": {"chat_id": cid}}),
        ("GET", MESSAGES, {"params": {"chat_id": cid, "parent_id": mid}}),
        ("GET", f"{MESSAGES}/{mid}", {}),
        ("PUT", f"{MESSAGES}/{mid}", {"json": {"text": "rewritten"}}),
        ("DELETE", f"{MESSAGES}/{mid}", {}),
        ("POST", f"{MESSAGES}/{mid}/reactions", {"json": {"emoji": "thumbsdown"}}),
        ("DELETE", f"{MESSAGES}/{mid}/reactions", {"json": {"emoji": "thumbsup"}}),
        ("DELETE", f"{MESSAGES}/{mid}/reactions", {"params": {"emoji": "thumbsup"}}),
        ("POST", f"{V}/talks/{cid}/participants", {"json": {"agent_id": outsider.id}}),
        ("DELETE", f"{V}/talks/{cid}/participants/{pid}", {}),
        ("POST", f"{V}/talks/{cid}/messages", {"json": {"text": "let me in"}}),
        ("GET", f"{V}/talks/{cid}/messages", {}),
        ("POST", f"{V}/messages/{mid}/reactions", {"json": {"emoji": "thumbsdown"}}),
    ]


async def _unchanged(alice: Agent, chat: dict, message: dict, snapshot: tuple) -> None:
    assert (await alice.get_chat(chat), await alice.participants(chat),
            await alice.messages(chat)) == snapshot


async def _snapshot(alice: Agent, chat: dict) -> tuple:
    return await alice.get_chat(chat), await alice.participants(chat), await alice.messages(chat)


async def test_a_non_participant_of_the_same_customer_gets_403_everywhere(talk):
    alice, _, chat, message, bob_p = await _scene(talk)
    carol = alice.colleague()
    before = await _snapshot(alice, chat)
    for method, path, kwargs in _every_endpoint(chat, message, bob_p, carol):
        await carol.problem(403, method, path, **kwargs)
    await _unchanged(alice, chat, message, before)
    assert (await carol.ok("GET", CHATS))["result"] == []


async def test_a_removed_participant_gets_403_everywhere(talk):
    alice, bob, chat, message, bob_p = await _scene(talk)
    await bob.remove(chat, bob_p)
    alice_p = await alice.participant_of(chat, alice)
    before = await _snapshot(alice, chat)
    for method, path, kwargs in _every_endpoint(chat, message, alice_p, bob):
        await bob.problem(403, method, path, **kwargs)
    await _unchanged(alice, chat, message, before)


async def test_another_customer_gets_404_everywhere(talk):
    alice, _, chat, message, bob_p = await _scene(talk)
    mallory = talk.agent()
    # The same agent id under another customer is another agent: still 404.
    alice_elsewhere = Agent(talk, mallory.customer_id, alice.agent_id)
    before = await _snapshot(alice, chat)
    for outsider in (mallory, alice_elsewhere):
        for method, path, kwargs in _every_endpoint(chat, message, bob_p, outsider):
            body = await outsider.problem(404, method, path, **kwargs)
            assert "private" not in body["detail"]
    await _unchanged(alice, chat, message, before)


async def test_two_customers_are_isolated(talk):
    alice, bob, chat_a, msg_a, _ = await _scene(talk)
    # A second customer whose agents carry the very same agent ids.
    other = talk.agent()
    alice_b = Agent(talk, other.customer_id, alice.agent_id)
    bob_b = Agent(talk, other.customer_id, bob.agent_id)
    chat_b = await alice_b.create_talk(members=(bob_b,), name="theirs")
    msg_b = await bob_b.post(chat_b, "their words")
    await alice_b.react(msg_b, "heart")

    assert [c["id"] for c in (await alice.ok("GET", CHATS))["result"]] == [chat_a["id"]]
    assert [c["id"] for c in (await alice_b.ok("GET", CHATS))["result"]] == [chat_b["id"]]
    assert [c["id"] for c in (await bob.ok("GET", CHATS))["result"]] == [chat_a["id"]]

    texts_a = {m["text"] for m in await alice.messages(chat_a)}
    texts_b = {m["text"] for m in await alice_b.messages(chat_b)}
    assert "their words" not in texts_a and "private words" not in texts_b
    assert all(m["customer_id"] == str(alice.customer_id) for m in await alice.messages(chat_a))
    assert all(p["customer_id"] == str(other.customer_id) for p in await bob_b.participants(chat_b))

    # Cross-references between the customers fail as if nothing existed.
    await alice.problem(404, "GET", f"{MESSAGES}/{msg_b['id']}")
    await alice_b.problem(404, "GET", f"{MESSAGES}/{msg_a['id']}")
    await alice_b.problem(404, "POST", MESSAGES, json={
        "chat_id": chat_b["id"], "text": "re", "parent_id": msg_a["id"]})
    await alice.problem(404, "POST", f"{CHATS}/{chat_b['id']}/participants",
                        json={"owner_type": "agent", "owner_id": alice.id})
    await alice_b.problem(404, "DELETE", f"{CHATS}/{chat_a['id']}")
    assert (await alice.get_chat(chat_a))["tm_delete"] == ""
    assert (await alice_b.get_message(msg_b))["metadata"]["reactions"][0]["owner_id"] == alice.id


async def test_malformed_ids_in_paths_are_404(talk):
    alice = talk.agent()
    for method, path in [("GET", f"{CHATS}/nope"), ("PUT", f"{CHATS}/nope"),
                         ("DELETE", f"{CHATS}/nope"), ("GET", f"{CHATS}/nope/participants"),
                         ("POST", f"{CHATS}/nope/participants"), ("GET", f"{MESSAGES}/nope"),
                         ("PUT", f"{MESSAGES}/nope"), ("DELETE", f"{MESSAGES}/nope"),
                         ("GET", f"{V}/talks/nope/messages"), ("POST", f"{V}/talks/nope/messages")]:
        await alice.problem(404, method, path, json={"name": "x", "text": "x", "emoji": "x"})
    await alice.problem(400, "GET", MESSAGES, params={"chat_id": "nope"})
    await alice.problem(400, "GET", MESSAGES, params={"parent_id": "nope"})
