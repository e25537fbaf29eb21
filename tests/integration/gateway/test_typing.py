"""Typing signals cross gateways through RabbitMQ's ``talk.ephemeral`` exchange: every other
participant following the talk gets one, the typer, non-participants and other customers
never do, at most one per agent and talk every 2 s, and only a participant's is forwarded.

Two gateways that share nothing but the broker (each its own connections) stand for two
gateway processes. Signals one gateway publishes reach each gateway's queue in the order
published, so a later signal on the same path is the witness that an earlier one was not
delivered to a socket."""

from __future__ import annotations

from uuid import uuid4

from prometheus_client import REGISTRY

from tests.integration.gateway.support import post_talk
from tests.support import wait_until


def _typing(chat_id: str, agent_id) -> dict:
    return {"type": "typing", "topic": f"chat:{chat_id}",
            "data": {"chat_id": chat_id, "agent_id": str(agent_id)}}


async def _two_gateways(start_gateway):
    one, two = await start_gateway(), await start_gateway()
    for gateway in (one, two):
        bus = gateway.app[_typing_key()].bus
        await wait_until(lambda bus=bus: _now(bus.ready.is_set()), what="the ephemeral bus")
    return one, two


def _typing_key():
    from services.gateway.app import TYPING

    return TYPING


async def _now(value):
    return value


async def test_typing_reaches_the_other_participants_on_both_gateways_only(api, start_gateway):
    one, two = await _two_gateways(start_gateway)
    customer, other_customer = uuid4(), uuid4()
    typer, on_chat, on_agent, outsider, foreigner, witness = (uuid4() for _ in range(6))
    talk = await post_talk(api, customer, typer, [on_chat, on_agent])
    witness_talk = await post_talk(api, customer, witness, [outsider, typer])
    foreign_talk = await post_talk(api, other_customer, foreigner, [])
    foreign_mate = uuid4()
    foreign_witness_talk = await post_talk(api, other_customer, foreign_mate, [foreigner])

    typer_socket = await one.connect(customer, typer, validate=True)
    await typer_socket.subscribe(f"chat:{talk['id']}", f"chat:{witness_talk['id']}")
    chat_socket = await two.connect(customer, on_chat, validate=True)
    await chat_socket.subscribe(f"chat:{talk['id']}")
    agent_socket = await one.connect(customer, on_agent, validate=True)
    await agent_socket.subscribe(f"agent:{on_agent}")
    outsider_socket = await two.connect(customer, outsider, validate=True)
    await outsider_socket.subscribe(f"agent:{outsider}")
    foreign_socket = await two.connect(other_customer, foreigner, validate=True)
    await foreign_socket.subscribe(f"chat:{foreign_talk['id']}", f"agent:{foreigner}")
    witness_socket = await one.connect(customer, witness, validate=True)
    foreign_mate_socket = await one.connect(other_customer, foreign_mate, validate=True)

    await typer_socket.send({"type": "typing", "chat_id": talk["id"]})
    assert await chat_socket.frame() == _typing(talk["id"], typer)  # across the broker
    assert await agent_socket.frame() == _typing(talk["id"], typer)  # on the typer's gateway

    # Witnesses published after it, from the same gateway: the first typing frame the
    # outsider, the foreigner and the typer get is the witness's, not the typer's.
    await witness_socket.send({"type": "typing", "chat_id": witness_talk["id"]})
    await foreign_mate_socket.send({"type": "typing", "chat_id": foreign_witness_talk["id"]})
    assert await outsider_socket.frame() == _typing(witness_talk["id"], witness)
    assert await foreign_socket.frame() == _typing(foreign_witness_talk["id"], foreign_mate)
    assert await typer_socket.frame() == _typing(witness_talk["id"], witness)


async def test_at_most_one_typing_per_agent_and_talk_every_two_seconds(api, start_gateway):
    one, two = await _two_gateways(start_gateway)
    customer, typer, reader, witness = uuid4(), uuid4(), uuid4(), uuid4()
    talk = await post_talk(api, customer, typer, [reader, witness])
    typer_on_one = await one.connect(customer, typer, validate=True)
    typer_on_two = await two.connect(customer, typer, validate=True)
    witness_socket = await one.connect(customer, witness, validate=True)
    reader_socket = await two.connect(customer, reader, validate=True)
    await reader_socket.subscribe(f"chat:{talk['id']}")

    dropped_before, repeats_before = _dropped(), _dropped("dropped_repeat")
    for _ in range(5):
        await typer_on_one.send({"type": "typing", "chat_id": talk["id"]})
    await typer_on_two.send({"type": "typing", "chat_id": talk["id"]})  # another gateway
    # Sockets are read concurrently: wait until the gateways have dealt with all six before
    # the witness, which then comes after any repeat would. Four repeats never leave the
    # typer's first gateway; the second gateway's one goes out, and each gateway drops it as
    # a repeat of the first when it arrives.
    await wait_until(lambda: _now(_dropped() - dropped_before >= 4
                                  and _dropped("dropped_repeat") - repeats_before >= 2),
                     what="the repeats dropped")
    await witness_socket.send({"type": "typing", "chat_id": talk["id"]})
    assert await reader_socket.frame() == _typing(talk["id"], typer)
    assert await reader_socket.frame() == _typing(talk["id"], witness)


def _dropped(outcome: str = "dropped_rate") -> float:
    return REGISTRY.get_sample_value("talk_gateway_typing_total", {"outcome": outcome}) or 0.0


async def test_a_non_participants_typing_is_refused_and_goes_nowhere(api, start_gateway):
    one, two = await _two_gateways(start_gateway)
    customer, member, outsider, witness = uuid4(), uuid4(), uuid4(), uuid4()
    talk = await post_talk(api, customer, member, [witness])
    member_socket = await two.connect(customer, member, validate=True)
    await member_socket.subscribe(f"chat:{talk['id']}")
    outsider_socket = await one.connect(customer, outsider, validate=True)
    await outsider_socket.send({"type": "typing", "chat_id": talk["id"]})
    frame = await outsider_socket.frame()
    assert (frame["type"], frame["error"], frame["chat_id"]) == ("error", "forbidden", talk["id"])
    await outsider_socket.send({"type": "typing", "chat_id": "not-a-talk"})
    assert (await outsider_socket.frame())["error"] == "invalid_chat_id"
    witness_socket = await one.connect(customer, witness, validate=True)
    await witness_socket.send({"type": "typing", "chat_id": talk["id"]})
    assert await member_socket.frame() == _typing(talk["id"], witness)
