"""The example clients (examples/) against running services, each example a process with a
bounded runtime: ``ws_client.py`` follows an agent, rides out a gateway restart (1001) with
its resume token and gets every event once; ``stream_consumer.py`` reads the stream queue
from its first offset and prints each event once. Beside them, with two gateway processes
on one RabbitMQ: a typing signal crosses from one to the other, the contract is served
without a token, and every frame received matches it."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from uuid import uuid4

import aio_pika
import aiohttp
import psycopg
import pytest

from tests.e2e.flow import CHATS, MESSAGES, Api, agent_with_secret
from tests.e2e.processes import TalkProcess, clean_env, free_port, talk_command, talk_processes
from tests.e2e.resources import broker_env, empty_database, own_broker_topology
from tests.integration.gateway.contract import validate_frame
from tests.support import TEST_SECRET, wait_until

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_TIMEOUT = 60.0  # the longest an example may run before the test fails


class ExampleProcess(TalkProcess):
    @classmethod
    async def run_example(cls, name: str, *args: str) -> ExampleProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(EXAMPLES / name), *args, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        return cls(name, proc)

    def json_lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stdout if line.startswith("{")]


@pytest.fixture(scope="module")
async def services(tmp_path_factory: pytest.TempPathFactory, postgres_admin_url: str,
                   amqp_url: str) -> AsyncIterator:
    """The command API, the projector and two gateways as processes (shared by the tests
    of this module), on a database and broker topology of their own."""
    tmp_path = tmp_path_factory.mktemp("examples")
    with empty_database(postgres_admin_url) as database_url:
        async with own_broker_topology(amqp_url) as broker:
            ports = {name: free_port() for name in ("command-api", "projector", "gateway",
                                                    "gateway-2")}
            env = clean_env(database_url=database_url, jwt_secret=TEST_SECRET,
                            host="127.0.0.1", command_api_port=str(ports["command-api"]),
                            projector_port=str(ports["projector"]),
                            ephemeral_exchange=f"{broker.exchange}.ephemeral",
                            **broker_env(broker))
            await talk_command("migrate", env=env, cwd=tmp_path)
            async with talk_processes() as running, aiohttp.ClientSession() as session:
                stack = Stack(session, tmp_path, env, ports, running, broker)
                stack.database_url = database_url
                await asyncio.gather(*(stack.start(name) for name in (
                    "command-api", "projector", "gateway", "gateway-2")))
                yield stack
            connection = await aio_pika.connect(amqp_url)
            async with connection:
                await (await connection.channel()).exchange_delete(
                    f"{broker.exchange}.ephemeral")


class Stack:
    def __init__(self, session, cwd, env, ports, running, broker) -> None:
        self.session, self.cwd, self.env, self.ports = session, cwd, env, ports
        self.running, self.broker = running, broker
        self.procs: dict[str, TalkProcess] = {}
        self.database_url = ""

    def base(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    async def start(self, name: str) -> None:
        command = name.removesuffix("-2")
        env = self.env if command != "gateway" else {
            **self.env, "TALK_GATEWAY_PORT": str(self.ports[name])}
        proc = await TalkProcess.start(command, env=env, cwd=self.cwd, name=name)
        self.running.append(proc)
        self.procs[name] = proc

        async def ready() -> bool:
            try:
                async with self.session.get(f"{self.base(name)}/readyz") as resp:
                    return resp.status == 200
            except aiohttp.ClientError:
                return False

        await wait_until(ready, timeout=60, what=f"{name} /readyz 200")


@asynccontextmanager
async def _example(name: str, *args: str) -> AsyncIterator[ExampleProcess]:
    proc = await ExampleProcess.run_example(name, *args)
    try:
        yield proc
    finally:
        await proc.kill()


async def test_the_websocket_client_example_resumes_across_a_gateway_restart(services):
    api = Api(services.session, write=services.base("command-api"), read="")
    alice = agent_with_secret(api, uuid4())
    bob = agent_with_secret(api, alice.customer_id)
    chat = await alice.command("POST", CHATS, {"type": "group", "participants": [
        {"owner_type": "agent", "owner_id": bob.id}]})
    ws_url = services.base("gateway").replace("http://", "ws://")
    async with _example("ws_client.py", "--url", ws_url, "--token", bob.token,
                        "--topic", f"chat:{chat['id']}", "--max-frames", "3") as client:
        await client.wait_for_line(re.compile(r'"type": "subscribed"'))
        texts = ["before the restart", "while the gateway is down", "after it"]
        posted = [await bob.command("POST", MESSAGES, {"chat_id": chat["id"],
                                                       "type": "normal", "text": texts[0]})]
        await client.wait_for_line(re.compile(texts[0]))
        assert await services.procs["gateway"].stop(signal.SIGTERM) == 0
        await client.wait_for_line(re.compile(r"closed with 1001: reconnecting"),
                                   stream="stderr")
        for text in texts[1:]:
            posted.append(await bob.command("POST", MESSAGES, {
                "chat_id": chat["id"], "type": "normal", "text": text}))
        await services.start("gateway")
        assert await client.exit_code(EXAMPLE_TIMEOUT) == 0, client.output()
    frames = client.json_lines()
    for frame in frames:
        validate_frame(frame)
    events = [f for f in frames if f["type"] == "message_created"]
    assert [f["data"]["id"] for f in events] == [m["id"] for m in posted], client.output()


async def test_the_stream_consumer_example_prints_every_event_once(services):
    api = Api(services.session, write=services.base("command-api"), read="")
    alice = agent_with_secret(api, uuid4())
    chat = await alice.command("POST", CHATS, {"type": "group"})
    posted = [await alice.command("POST", MESSAGES, {"chat_id": chat["id"], "type": "normal",
                                                     "text": f"m{i}"}) for i in range(5)]
    async with await psycopg.AsyncConnection.connect(services.database_url) as conn:
        stored = (await (await conn.execute("SELECT count(*) FROM events")).fetchone())[0]
    async with _example("stream_consumer.py", "--amqp-url", services.broker.amqp_url,
                        "--queue", services.broker.stream_queue, "--offset", "first",
                        "--max-messages", str(stored)) as consumer:
        assert await consumer.exit_code(EXAMPLE_TIMEOUT) == 0, consumer.output()
    lines = consumer.json_lines()
    ids = [line["message_id"] for line in lines]
    assert len(ids) == len(set(ids)) == stored  # every stored event once
    created = [line["data_id"] for line in lines if line["type"] == "message_created"]
    assert [m["id"] for m in posted] == [i for i in created if i in {m["id"] for m in posted}]
    offsets = [line["offset"] for line in lines]
    assert offsets == sorted(offsets)


async def test_typing_crosses_two_gateway_processes_and_the_contract_is_served(services):
    async with services.session.get(f"{services.base('gateway')}/v1.0/asyncapi.json") as resp:
        assert resp.status == 200  # no token
        document = await resp.json()
    assert document["asyncapi"] == "3.0.0"
    assert "typing" in {m["name"] for m in document["components"]["messages"].values()}

    api = Api(services.session, write=services.base("command-api"), read="")
    alice = agent_with_secret(api, uuid4())
    bob = agent_with_secret(api, alice.customer_id)
    chat = await alice.command("POST", CHATS, {"type": "group", "participants": [
        {"owner_type": "agent", "owner_id": bob.id}]})
    sockets = []
    for agent, gateway in ((alice, "gateway"), (bob, "gateway-2")):
        socket = await services.session.ws_connect(f"{services.base(gateway)}/v1.0/ws",
                                                   headers=agent.headers)
        await socket.send_json({"type": "subscribe", "topics": [f"chat:{chat['id']}"]})
        frame = await socket.receive_json(timeout=15)  # accepted right after the command
        validate_frame(frame)
        assert frame == {"type": "subscribed", "topics": [f"chat:{chat['id']}"]}
        sockets.append(socket)
    await sockets[0].send_json({"type": "typing", "chat_id": chat["id"]})
    # The talk's own events (its creation, published after the projection the subscribe
    # waited for) may still be on their way to bob: the typing signal follows them or not.
    frame = await sockets[1].receive_json(timeout=15)
    while frame["type"] != "typing":
        validate_frame(frame)
        assert frame["topic"] == f"chat:{chat['id']}" and "resume_token" in frame, frame
        frame = await sockets[1].receive_json(timeout=15)
    validate_frame(frame)
    assert frame == {"type": "typing", "topic": f"chat:{chat['id']}",
                     "data": {"chat_id": chat["id"], "agent_id": alice.id}}
