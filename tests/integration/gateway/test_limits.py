"""The limits that keep one client or tenant from taking what the others need: tokens that
are not genuine, or point past the stream, answer ``resync_required`` at once without a
replay slot; sockets per agent; refused topics count toward the topic limit; membership
checks are rate limited per socket."""

from __future__ import annotations

import base64
import os
from uuid import uuid4

from services.gateway.connections import TOO_MANY_SOCKETS_CLOSE
from services.gateway.tokens import ResumeTokens
from tests.integration.gateway.support import event_frame, wait_closed, without_token
from tests.support import TEST_SECRET

TOKENS = ResumeTokens(TEST_SECRET)


def _forged() -> str:
    return base64.urlsafe_b64encode(os.urandom(22)).rstrip(b"=").decode()


async def _token_of(gateway, publisher, customer, agent) -> str:
    """A genuine token: the last event the agent received on a socket now closed."""
    client = await gateway.connect(customer, agent)
    await client.subscribe(f"agent:{agent}")
    await publisher.publish("message_created", customer, uuid4(), [agent])
    token = (await client.frame())["resume_token"]
    await client.close()
    return token


async def test_forged_and_future_tokens_get_resync_required_then_live(gateway, publisher):
    customer, a = uuid4(), uuid4()
    genuine = await _token_of(gateway, publisher, customer, a)
    future = TOKENS.encode(TOKENS.decode(genuine, str(customer)).offset + 10_000_000,
                           str(uuid4()), str(customer))
    for token in (_forged(), future):
        client = await gateway.connect(customer, a)
        await client.subscribe(f"agent:{a}", resume_token=token)
        assert await client.frame() == {"type": "resync_required"}
        live = await publisher.publish("message_updated", customer, uuid4(), [a])
        assert without_token(await client.frame()) == event_frame(live, f"agent:{a}")
        await client.close()


async def test_a_token_of_another_customer_replays_nothing(gateway, publisher):
    customer, victim = uuid4(), uuid4()
    token = await _token_of(gateway, publisher, customer, victim)
    missed = [await publisher.publish("message_created", customer, uuid4(), [victim])
              for _ in range(5)]
    assert missed
    intruder_customer, intruder = uuid4(), victim  # even the same agent id, another tenant
    client = await gateway.connect(intruder_customer, intruder)
    await client.subscribe(f"agent:{intruder}", resume_token=token)
    assert await client.frame() == {"type": "resync_required"}
    await publisher.publish("message_created", customer, uuid4(), [victim])
    own = await publisher.publish("message_created", intruder_customer, uuid4(), [intruder])
    assert without_token(await client.frame()) == event_frame(own, f"agent:{intruder}")


async def test_64_sockets_with_bad_tokens_do_not_delay_another_customers_resume(
        gateway_settings, start_gateway, publisher):
    # A resume that holds a replay slot would hold it for 60 s here (the locate timeout).
    gateway = await start_gateway(gateway_settings.model_copy(update={
        "gateway_resume_timeout": 60.0}))
    customer, a = uuid4(), uuid4()
    token = await _token_of(gateway, publisher, customer, a)
    missed = [await publisher.publish("message_created", customer, uuid4(), [a])
              for _ in range(20)]

    attacker = uuid4()
    offset = TOKENS.decode(token, str(customer)).offset
    bad_sockets = []
    for i in range(64):
        agent = uuid4()
        bad = _forged() if i % 2 else TOKENS.encode(offset + 10_000_000, str(uuid4()),
                                                    str(attacker))
        socket = await gateway.connect(attacker, agent)
        await socket.send({"type": "subscribe", "topics": [f"agent:{agent}"],
                           "resume_token": bad})
        bad_sockets.append(socket)

    client = await gateway.connect(customer, a)
    await client.subscribe(f"agent:{a}", resume_token=token)
    got = [without_token(f) for f in await client.frames(20, timeout=15)]
    assert got == [event_frame(m, f"agent:{a}") for m in missed]
    for socket in bad_sockets:
        assert (await socket.frame())["type"] == "subscribed"
        assert await socket.frame() == {"type": "resync_required"}


async def test_an_agent_may_hold_at_most_the_configured_sockets(gateway_settings,
                                                               start_gateway):
    gateway = await start_gateway(gateway_settings.model_copy(update={
        "gateway_max_sockets_per_agent": 3}))
    customer, agent = uuid4(), uuid4()
    held = [await gateway.connect(customer, agent) for _ in range(3)]
    for client in held:
        await client.subscribe(f"agent:{agent}")
    refused = await gateway.connect(customer, agent)
    assert await wait_closed(refused.ws) == TOO_MANY_SOCKETS_CLOSE
    other = await gateway.connect(customer, uuid4())  # another agent is not affected
    await other.subscribe(f"agent:{other.agent_id}")
    await held[0].close()
    again = await gateway.connect(customer, agent)  # room again once one has gone
    await again.subscribe(f"agent:{agent}")


async def test_refused_topics_count_toward_the_topic_limit(gateway, monkeypatch):
    import services.gateway.protocol as protocol

    monkeypatch.setattr(protocol, "MAX_TOPICS", 5)
    customer, agent = uuid4(), uuid4()
    client = await gateway.connect(customer, agent, validate=True)
    for _ in range(5):
        await client.send({"type": "subscribe", "topics": [f"agent:{uuid4()}"]})
        assert (await client.frame())["error"] == "forbidden"
    await client.send({"type": "subscribe", "topics": [f"agent:{agent}"]})
    frame = await client.frame()
    assert (frame["error"], frame["topic"]) == ("too_many_topics", f"agent:{agent}")


async def test_membership_checks_are_rate_limited_per_socket(gateway, monkeypatch):
    import services.gateway.limits as limits

    monkeypatch.setattr(limits, "CHECK_BURST", 3.0)
    monkeypatch.setattr(limits, "CHECK_RATE", 0.001)
    customer, agent = uuid4(), uuid4()
    client = await gateway.connect(customer, agent, validate=True)
    await client.send({"type": "subscribe", "topics": [f"chat:{uuid4()}" for _ in range(3)]})
    assert [(await client.frame())["error"] for _ in range(3)] == ["not_found"] * 3
    topic = f"chat:{uuid4()}"
    await client.send({"type": "subscribe", "topics": [topic]})
    frame = await client.frame()
    assert (frame["error"], frame["topic"]) == ("rate_limited", topic)
    other = await gateway.connect(customer, agent, validate=True)  # per socket
    await other.send({"type": "subscribe", "topics": [topic]})
    assert (await other.frame())["error"] == "not_found"
