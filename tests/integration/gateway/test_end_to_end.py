"""The real path: command API → event store → projector (read tables + outbox) → publisher →
RabbitMQ stream → gateway → socket. Frames carry the resources as the query API shows them,
and match the gateway's AsyncAPI document."""

from __future__ import annotations

from uuid import uuid4

from tests.integration.gateway.support import Client
from tests.support import bearer

CHATS = "/v1.0/service_agents/talk_chats"
MESSAGES = "/v1.0/service_agents/talk_messages"


async def _ok(resp) -> dict:
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def _frames_until(client: Client, type_: str, data_id: str) -> list[dict]:
    frames = []
    while True:
        frame = await client.frame()
        frames.append(frame)
        if frame["type"] == type_ and frame["data"]["id"] == data_id:
            return frames


async def test_every_event_type_reaches_participants_through_the_real_path(live_system):
    api, gateway = live_system.api, live_system.gateway
    customer, other_customer = uuid4(), uuid4()
    a, b, c, outsider, foreigner = uuid4(), uuid4(), uuid4(), uuid4(), uuid4()
    auth_a, auth_c = bearer(customer, a), bearer(customer, c)
    client_a = await gateway.connect(customer, a, validate=True)
    await client_a.subscribe(f"agent:{a}")
    client_c = await gateway.connect(customer, c, validate=True)
    await client_c.subscribe(f"agent:{c}")
    client_outsider = await gateway.connect(customer, outsider)
    await client_outsider.subscribe(f"agent:{outsider}")
    client_foreigner = await gateway.connect(other_customer, foreigner)
    await client_foreigner.subscribe(f"agent:{foreigner}")

    chat = await _ok(await api.post(CHATS, headers=auth_a, json={
        "type": "group", "name": "ops",
        "participants": [{"owner_type": "agent", "owner_id": str(b)}]}))
    chat_url = f"{CHATS}/{chat['id']}"
    await _ok(await api.put(chat_url, headers=auth_a, json={"name": "ops-2"}))
    message = await _ok(await api.post(MESSAGES, headers=auth_a, json={
        "chat_id": chat["id"], "type": "normal", "text": "hello"}))
    message_url = f"{MESSAGES}/{message['id']}"
    await _ok(await api.put(message_url, headers=auth_a, json={"text": "hello!"}))
    await _ok(await api.post(f"{message_url}/reactions", headers=auth_a, json={"emoji": "👍"}))
    await _ok(await api.delete(f"{message_url}/reactions?emoji=👍", headers=auth_a))
    await _ok(await api.delete(message_url, headers=auth_a))
    joined = await _ok(await api.post(f"{chat_url}/participants", headers=auth_a, json={
        "owner_type": "agent", "owner_id": str(c)}))
    await _ok(await api.delete(f"{chat_url}/participants/{joined['id']}", headers=auth_a))
    after_c_left = await _ok(await api.post(MESSAGES, headers=auth_a, json={
        "chat_id": chat["id"], "type": "normal", "text": "c is gone"}))
    deleted = await _ok(await api.delete(chat_url, headers=auth_a))

    frames = await _frames_until(client_a, "chat_deleted", chat["id"])
    assert all(f["topic"] == f"agent:{a}" and f["resume_token"] for f in frames)
    by_type: dict[str, list[dict]] = {}
    for f in frames:
        by_type.setdefault(f["type"], []).append(f["data"])
    assert set(by_type) == {
        "chat_created", "chat_updated", "chat_deleted", "participant_joined",
        "participant_left", "message_created", "message_updated", "message_deleted",
        "reaction_added", "reaction_removed"}
    assert by_type["chat_created"][0]["id"] == chat["id"]
    assert by_type["chat_updated"][0]["name"] == "ops-2"
    assert by_type["chat_deleted"] == [deleted]
    # The joins of a talk's creation go to each joining agent alone (the others learn the
    # members from chat_created); a later join goes to every participant.
    assert {p["owner_id"] for p in by_type["participant_joined"]} == {str(a), str(c)}
    assert by_type["participant_left"] == [joined]
    assert [m["text"] for m in by_type["message_updated"]] == ["hello!"]
    assert by_type["reaction_added"][0]["metadata"]["reactions"][0]["emoji"] == "👍"
    assert by_type["reaction_removed"][0]["metadata"]["reactions"] == []
    assert by_type["message_deleted"][0]["id"] == message["id"]
    assert by_type["message_deleted"][0]["tm_delete"] != ""
    assert after_c_left["id"] in {m["id"] for m in by_type["message_created"]}
    # The query API shows the last state of the message exactly as the last frame did.
    shown = await _ok(await api.get(message_url, headers=auth_a))
    assert shown == by_type["message_deleted"][0]

    # c saw its own join up to its participant_left, then nothing of the talk.
    frames_c = await _frames_until(client_c, "participant_left", joined["id"])
    assert {f["data"]["chat_id"] for f in frames_c} == {chat["id"]}
    marker_c = await _ok(await api.post(CHATS, headers=auth_c, json={"type": "group"}))
    frame = await client_c.frame()
    assert (frame["type"], frame["data"]["id"]) == ("chat_created", marker_c["id"])
    # The outsider and the other customer's agent saw nothing of it.
    for client, customer_id, agent_id in ((client_outsider, customer, outsider),
                                          (client_foreigner, other_customer, foreigner)):
        marker = await _ok(await api.post(CHATS, headers=bearer(customer_id, agent_id),
                                          json={"type": "group"}))
        frame = await client.frame()
        assert (frame["type"], frame["data"]["id"]) == ("chat_created", marker["id"])


async def test_reconnect_gets_the_200_messages_posted_meanwhile(live_system):
    api, gateway = live_system.api, live_system.gateway
    customer, a, b = uuid4(), uuid4(), uuid4()
    chat = await _ok(await api.post(CHATS, headers=bearer(customer, a), json={
        "type": "group", "participants": [{"owner_type": "agent", "owner_id": str(b)}]}))
    client = await gateway.connect(customer, b, validate=True)
    await client.subscribe(f"agent:{b}")
    first = await _ok(await api.post(MESSAGES, headers=bearer(customer, a), json={
        "chat_id": chat["id"], "type": "normal", "text": "first"}))
    await _frames_until(client, "message_created", first["id"])
    token = client.last_token
    await client.close()

    posted = [await _ok(await api.post(MESSAGES, headers=bearer(customer, a), json={
        "chat_id": chat["id"], "type": "normal", "text": f"m{i}"})) for i in range(200)]

    client = await gateway.connect(customer, b)
    await client.subscribe(f"chat:{chat['id']}", resume_token=token)
    frames = await client.frames(200)
    assert [(f["type"], f["topic"], f["data"]) for f in frames] == [
        ("message_created", f"chat:{chat['id']}", m) for m in posted]
    live = await _ok(await api.post(MESSAGES, headers=bearer(customer, a), json={
        "chat_id": chat["id"], "type": "normal", "text": "live"}))
    frame = await client.frame()
    assert (frame["type"], frame["data"]) == ("message_created", live)
