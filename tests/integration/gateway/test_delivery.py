"""Live delivery from the stream to sockets: every event type, only to its audience, only on
subscribed topics, never across customers."""

from __future__ import annotations

from uuid import uuid4

from services.gateway.feed import EVENT_TYPES
from tests.integration.gateway.support import create_talk, event_frame, without_token

EVERY_TYPE = sorted(EVENT_TYPES)  # the published names, from the event catalogue


async def test_each_event_type_reaches_subscribed_participants_only(api, gateway, publisher):
    assert {"chat_created", "message_created", "participant_left"} <= EVENT_TYPES
    customer, other_customer = uuid4(), uuid4()
    a, b, outsider, foreigner = uuid4(), uuid4(), uuid4(), uuid4()
    chat = await create_talk(api, customer, a, [b])
    chat_id = chat["id"]
    side_chat = await create_talk(api, customer, outsider, [])
    foreign_chat = await create_talk(api, other_customer, foreigner, [])

    client_a = await gateway.connect(customer, a)
    await client_a.subscribe(f"chat:{chat_id}")
    client_b = await gateway.connect(customer, b)
    await client_b.subscribe(f"agent:{b}")
    client_outsider = await gateway.connect(customer, outsider)
    await client_outsider.subscribe(f"agent:{outsider}", f"chat:{side_chat['id']}")
    client_foreigner = await gateway.connect(other_customer, foreigner)
    await client_foreigner.subscribe(f"agent:{foreigner}", f"chat:{foreign_chat['id']}")

    bodies = []
    for type_ in EVERY_TYPE:
        bodies.append(await publisher.publish(type_, customer, chat_id, [a, b],
                                              {"type": type_, "id": str(uuid4())}))
        # The same talk id under another customer, naming a in its audience: not for a.
        await publisher.publish(type_, other_customer, chat_id, [a, b])

    got_a = [without_token(f) for f in await client_a.frames(len(EVERY_TYPE))]
    assert got_a == [event_frame(body, f"chat:{chat_id}") for body in bodies]
    got_b = [without_token(f) for f in await client_b.frames(len(EVERY_TYPE))]
    assert got_b == [event_frame(body, f"agent:{b}") for body in bodies]

    # The outsider and the foreigner got nothing before these, which come after on the stream.
    marker = await publisher.publish("message_created", customer, side_chat["id"], [outsider])
    assert without_token(await client_outsider.frame()) == event_frame(
        marker, f"chat:{side_chat['id']}")
    foreign = await publisher.publish("message_created", other_customer, foreign_chat["id"],
                                      [foreigner])
    assert without_token(await client_foreigner.frame()) == event_frame(
        foreign, f"chat:{foreign_chat['id']}")
    # ... and a, b received nothing else meanwhile.
    last = await publisher.publish("chat_updated", customer, chat_id, [a, b])
    assert without_token(await client_a.frame()) == event_frame(last, f"chat:{chat_id}")
    assert without_token(await client_b.frame()) == event_frame(last, f"agent:{b}")


async def test_frames_carry_increasing_resume_tokens(gateway, publisher):
    customer, agent = uuid4(), uuid4()
    client = await gateway.connect(customer, agent)
    await client.subscribe(f"agent:{agent}")
    for _ in range(3):
        await publisher.publish("message_created", customer, uuid4(), [agent])
    frames = await client.frames(3)
    tokens = [f["resume_token"] for f in frames]
    assert len(set(tokens)) == 3
    assert all(f["topic"] == f"agent:{agent}" for f in frames)


async def test_removed_participant_receives_nothing_after_participant_left(gateway, publisher):
    customer, a, b = uuid4(), uuid4(), uuid4()
    chat_id, later_chat = uuid4(), uuid4()
    client = await gateway.connect(customer, a)
    await client.subscribe(f"agent:{a}")
    before = await publisher.publish("message_created", customer, chat_id, [a, b])
    left = await publisher.publish("participant_left", customer, chat_id, [a, b])
    for type_ in ("message_created", "chat_updated", "reaction_added", "participant_joined"):
        await publisher.publish(type_, customer, chat_id, [b])
    marker = await publisher.publish("message_created", customer, later_chat, [a])
    got = [without_token(f) for f in await client.frames(3)]
    assert got == [event_frame(before, f"agent:{a}"), event_frame(left, f"agent:{a}"),
                   event_frame(marker, f"agent:{a}")]


async def test_an_event_matching_two_topics_is_sent_once_on_the_chat_topic(api, gateway,
                                                                            publisher):
    customer, a = uuid4(), uuid4()
    chat = await create_talk(api, customer, a, [])
    client = await gateway.connect(customer, a)
    await client.subscribe(f"agent:{a}", f"chat:{chat['id']}")
    first = await publisher.publish("message_created", customer, chat["id"], [a])
    other = await publisher.publish("message_created", customer, uuid4(), [a])
    got = [without_token(f) for f in await client.frames(2)]
    assert got == [event_frame(first, f"chat:{chat['id']}"), event_frame(other, f"agent:{a}")]


async def test_unsubscribe_stops_delivery(gateway, publisher):
    customer, a = uuid4(), uuid4()
    chat_id = uuid4()
    client = await gateway.connect(customer, a)
    await client.subscribe(f"agent:{a}")
    witness = await gateway.connect(customer, a)  # a second socket of the same agent
    await witness.subscribe(f"agent:{a}")
    await client.send({"type": "unsubscribe", "topics": [f"agent:{a}"]})
    assert await client.frame() == {"type": "unsubscribed", "topics": [f"agent:{a}"]}
    unseen = await publisher.publish("message_created", customer, chat_id, [a])
    # Once the witness has it, the gateway has dispatched it (not to the unsubscribed socket).
    assert without_token(await witness.frame()) == event_frame(unseen, f"agent:{a}")
    await client.subscribe(f"agent:{a}")
    after = await publisher.publish("message_updated", customer, chat_id, [a])
    assert without_token(await client.frame()) == event_frame(after, f"agent:{a}")


async def test_republished_event_is_delivered_once(gateway, publisher):
    customer, a = uuid4(), uuid4()
    client = await gateway.connect(customer, a)
    await client.subscribe(f"agent:{a}")
    event_id, chat_id = uuid4(), uuid4()
    first = await publisher.publish("message_created", customer, chat_id, [a], event_id=event_id)
    await publisher.publish("message_created", customer, chat_id, [a], event_id=event_id)
    second = await publisher.publish("message_updated", customer, chat_id, [a])
    got = [without_token(f) for f in await client.frames(2)]
    assert got == [event_frame(first, f"agent:{a}"), event_frame(second, f"agent:{a}")]


async def test_two_gateways_each_consume_the_stream(start_gateway, publisher):
    customer, a, b = uuid4(), uuid4(), uuid4()
    one, two = await start_gateway(), await start_gateway()
    client_a = await one.connect(customer, a)
    await client_a.subscribe(f"agent:{a}")
    client_b = await two.connect(customer, b)
    await client_b.subscribe(f"agent:{b}")
    bodies = [await publisher.publish("message_created", customer, uuid4(), [a, b])
              for _ in range(5)]
    assert [without_token(f) for f in await client_a.frames(5)] == [
        event_frame(x, f"agent:{a}") for x in bodies]
    assert [without_token(f) for f in await client_b.frames(5)] == [
        event_frame(x, f"agent:{b}") for x in bodies]
