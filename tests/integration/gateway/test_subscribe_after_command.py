"""A subscribe right after the command that created the talk or added the caller is
accepted (the gateway waits for the projection, it does not refuse for lag); a removed
participant is refused; a frame asks the read tables once for all its talks."""

from __future__ import annotations

import asyncio
from uuid import uuid4

from prometheus_client import REGISTRY

from tests.integration.gateway.support import CHATS, post_talk
from tests.support import bearer


async def _subscribe_at_once(client, topic: str) -> None:
    """Subscribe; never refused. ``unavailable`` (the projection more than 2 s behind, on an
    overloaded machine) is not a refusal: the client is told to try again, and does."""
    for _ in range(15):
        await client.send({"type": "subscribe", "topics": [topic]})
        frame = await client.frame()
        if frame.get("error") != "unavailable":
            assert frame == {"type": "subscribed", "topics": [topic]}, frame
            return
    raise AssertionError(f"{topic}: the projection stayed behind for 30 s")


async def test_create_then_subscribe_at_once_is_accepted_50_times(api, gateway):
    customer, creator, member = uuid4(), uuid4(), uuid4()
    client = await gateway.connect(customer, creator, validate=True)
    for _ in range(50):
        chat = await post_talk(api, customer, creator, [member])
        await _subscribe_at_once(client, f"chat:{chat['id']}")


async def test_added_agent_subscribing_at_once_is_accepted(api, gateway):
    customer, creator = uuid4(), uuid4()
    chat = await post_talk(api, customer, creator, [])
    for _ in range(10):
        added = uuid4()
        client = await gateway.connect(customer, added, validate=True)
        resp = await api.post(f"{CHATS}/{chat['id']}/participants", headers=bearer(
            customer, creator), json={"owner_type": "agent", "owner_id": str(added)})
        assert resp.status == 200, await resp.text()
        await _subscribe_at_once(client, f"chat:{chat['id']}")
        await client.close()


async def test_a_removed_participant_subscribing_again_is_refused(api, gateway):
    customer, creator, member = uuid4(), uuid4(), uuid4()
    chat = await post_talk(api, customer, creator, [member])
    topic = f"chat:{chat['id']}"
    client = await gateway.connect(customer, member, validate=True)
    await client.subscribe(topic)
    resp = await api.get(f"{CHATS}/{chat['id']}/participants",
                         headers=bearer(customer, creator))
    participant = next(p for p in (await resp.json())["result"]
                       if p["owner_id"] == str(member))
    resp = await api.delete(f"{CHATS}/{chat['id']}/participants/{participant['id']}",
                            headers=bearer(customer, creator))
    assert resp.status == 200, await resp.text()
    again = await gateway.connect(customer, member, validate=True)
    await again.send({"type": "subscribe", "topics": [topic]})
    frame = await again.frame()
    assert (frame["type"], frame["error"], frame["topic"]) == ("error", "forbidden", topic)


async def test_a_talk_the_projection_has_not_reached_is_unavailable_not_refused(
        settings, gateway_settings, api, projector, start_projector, start_gateway):
    gateway = await start_gateway(gateway_settings.model_copy(update={
        "read_your_writes_timeout": 0.5}))
    await projector.close()  # the projection stops where it is
    customer, creator = uuid4(), uuid4()
    chat = await post_talk(api, customer, creator, [])
    topic = f"chat:{chat['id']}"
    client = await gateway.connect(customer, creator, validate=True)
    await client.send({"type": "subscribe", "topics": [topic]})
    frame = await client.frame()
    assert (frame["error"], frame["topic"]) == ("unavailable", topic)
    # Another customer's agent is refused at once either way: the talk is not its.
    stranger = await gateway.connect(uuid4(), uuid4(), validate=True)
    start_projector()
    await client.subscribe(topic)
    await stranger.send({"type": "subscribe", "topics": [topic]})
    assert (await stranger.frame())["error"] == "not_found"


def _standings_checks() -> float:
    return REGISTRY.get_sample_value("talk_db_transaction_seconds_count",
                                     {"name": "gateway_standings"}) or 0.0


async def test_a_subscribe_frame_asks_the_read_tables_once_for_all_its_talks(api, gateway):
    customer, creator = uuid4(), uuid4()
    chats = await asyncio.gather(*(post_talk(api, customer, creator, []) for _ in range(10)))
    topics = [f"chat:{c['id']}" for c in chats]
    client = await gateway.connect(customer, creator, validate=True)
    await client.subscribe(*topics)  # the projection has reached them all once this passes
    await client.send({"type": "unsubscribe", "topics": topics})
    assert (await client.frame())["type"] == "unsubscribed"
    before = _standings_checks()
    await client.send({"type": "subscribe", "topics": [*topics, f"chat:{uuid4()}"]})
    assert (await client.frame())["error"] == "not_found"
    assert await client.frame() == {"type": "subscribed", "topics": topics}
    assert _standings_checks() == before + 1
