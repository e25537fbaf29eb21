"""``talk up`` against the local PostgreSQL (a fresh, empty database it migrates) and RabbitMQ:
the tutorial flow, with the events delivered through the broker exactly as in production (a
consumer of the exchange sees them, and so does a WebSocket on ``/v1.0/ws``)."""

from __future__ import annotations

import re
import signal
from pathlib import Path
from uuid import uuid4

import aiohttp

from tests.e2e.flow import (
    Api,
    agent_with_secret,
    close_code,
    frame_for,
    run_tutorial,
    subscribed_socket,
)
from tests.e2e.processes import TalkProcess, clean_env, talk_processes
from tests.e2e.resources import broker_env, empty_database, own_broker_topology
from tests.integration.publishing.tap import Tap
from tests.support import TEST_SECRET, wait_until


async def _tutorial_live(session: aiohttp.ClientSession, base: str, customer):
    """The tutorial by two agents of ``customer``, the first with a subscribed WebSocket
    that receives the reply; returns (alice, bob, her socket, the tutorial)."""
    api = Api(session, write=base, read=base)
    alice = agent_with_secret(api, customer)
    bob = agent_with_secret(api, customer)
    socket = await subscribed_socket(session, base, alice)
    tutorial = await run_tutorial(alice, bob)
    frame = await frame_for(socket, "message_created", tutorial.reply["id"])
    assert frame["data"]["parent_id"] == tutorial.hello["id"]
    return alice, bob, socket, tutorial


async def test_talk_up_on_postgres_and_rabbitmq(tmp_path: Path, postgres_admin_url: str,
                                                amqp_url: str) -> None:
    customer = uuid4()
    with empty_database(postgres_admin_url) as database_url:
        async with own_broker_topology(amqp_url) as broker:
            tap = await Tap.open(broker, f"{customer}.#")
            try:
                env = clean_env(database_url=database_url, jwt_secret=TEST_SECRET,
                                **broker_env(broker))
                async with talk_processes() as running, aiohttp.ClientSession() as session:
                    up = await TalkProcess.start("up", "--port", "0", env=env, cwd=tmp_path)
                    running.append(up)
                    base = await up.ready_url()
                    banner = "\n".join(up.stdout)
                    assert re.search(r"Postgres +external: .*/talk_e2e_", banner)
                    assert re.search(rf"delivery +RabbitMQ .*, exchange {re.escape(broker.exchange)}",
                                     banner)
                    assert "password" not in banner and "guest:guest" not in banner
                    assert not (tmp_path / ".talk").exists()  # nothing to keep locally

                    alice, bob, socket, tutorial = await _tutorial_live(session, base, customer)

                    wanted = {tutorial.hello["id"], tutorial.reply["id"]}

                    async def both_published() -> dict:
                        posted = {r.body["data"]["id"]: r for r in tap.of_type("message_created")}
                        return posted if wanted <= posted.keys() else {}

                    posted = await wait_until(both_published, timeout=20,
                                              what="the hello and the reply through RabbitMQ")
                    hello, reply = posted[tutorial.hello["id"]], posted[tutorial.reply["id"]]
                    assert hello.routing_key == (
                        f"{customer}.{tutorial.chat['id']}.message_created")
                    assert set(hello.body["audience"]) == {alice.id, bob.id}
                    assert reply.body["data"]["parent_id"] == tutorial.hello["id"]
                    [reaction] = await tap.wait_for(1, "the reaction published", event="reaction_added")
                    assert reaction.body["data"]["id"] == tutorial.reply["id"]

                    up.send(signal.SIGINT)
                    assert await close_code(socket) == 1001  # going away
                    assert await up.exit_code(15) == 0, up.output()
            finally:
                await tap.close()


async def test_talk_up_with_partitions_delivers_in_process(tmp_path: Path,
                                                           postgres_admin_url: str) -> None:
    """``talk up`` with TALK_PROJECTOR_PARTITIONS=4 and no RabbitMQ: its one process holds
    all four partitions, each publishing its outbox into the in-process feed; the tutorial's
    reads wait for the projection across partitions and its WebSocket gets the frames."""
    customer = uuid4()
    with empty_database(postgres_admin_url) as database_url:
        env = clean_env(database_url=database_url, jwt_secret=TEST_SECRET,
                        projector_partitions="4")
        async with talk_processes() as running, aiohttp.ClientSession() as session:
            up = await TalkProcess.start("up", "--port", "0", env=env, cwd=tmp_path)
            running.append(up)
            base = await up.ready_url()
            _, _, socket, _ = await _tutorial_live(session, base, customer)

            async def all_four_held() -> bool:
                async with session.get(f"{base}/metrics") as resp:
                    text = await resp.text()
                return "talk_projector_partitions_owned 4.0" in text

            await wait_until(all_four_held, what="talk up holding the four partitions")
            async with session.get(f"{base}/readyz") as resp:
                assert resp.status == 200, await resp.text()
            up.send(signal.SIGINT)
            assert await close_code(socket) == 1001
            assert await up.exit_code(15) == 0, up.output()
