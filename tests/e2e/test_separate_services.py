"""The separate services as processes on their own ports, against the local PostgreSQL (a
fresh database that ``talk migrate`` migrates) and RabbitMQ: the tutorial flow with writes
to the command API and reads from the query API (``X-Talk-Min-Position``), each service's
probes, metrics and JSON logs; then SIGTERM while requests are in flight: each service
stops accepting, finishes those requests, closes its sockets with 1001 and exits 0 within
its shutdown timeout."""

from __future__ import annotations

import asyncio
import re
import signal
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID, uuid4

import aiohttp
import orjson
import psycopg

from tests.e2e.flow import (
    MESSAGES,
    Api,
    agent_with_secret,
    close_code,
    frame_for,
    run_tutorial,
    subscribed_socket,
)
from tests.e2e.processes import (
    TalkProcess,
    clean_env,
    free_port,
    talk_command,
    talk_processes,
)
from tests.e2e.resources import broker_env, empty_database, own_broker_topology
from tests.integration.publishing.tap import Tap
from tests.support import TEST_SECRET, wait_until

SHUTDOWN_TIMEOUT = 10.0
EXIT_MARGIN = 3.0  # interpreter teardown after the drain
SERVICES = ("command-api", "query-api", "projector", "gateway")
PORT_SETTING = {"command-api": "command_api_port", "query-api": "query_api_port",
                "projector": "projector_port", "gateway": "gateway_port"}


async def _status(session: aiohttp.ClientSession, url: str) -> int:
    try:
        async with session.get(url) as resp:
            return resp.status
    except aiohttp.ClientError:
        return 0


async def _metrics(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(f"{base}/metrics") as resp:
        assert resp.status == 200
        return await resp.text()


def _sample(metrics: str, name: str, **labels: str) -> float | None:
    """The value of one sample of the Prometheus text ``metrics``, if present."""
    for line in metrics.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            return float(m.group(3))
    return None


async def _refuses_connections(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return True
    writer.close()
    return False


async def _waiting_on_lock(conn: psycopg.AsyncConnection, application: str) -> bool:
    cur = await conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s"
        " AND wait_event_type = 'Lock'", (application,))
    row = await cur.fetchone()
    return bool(row and row[0])


@dataclass
class Services:
    session: aiohttp.ClientSession
    ports: dict[str, int]
    procs: dict[str, TalkProcess] = field(default_factory=dict)

    def base(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"


async def test_separate_services(tmp_path: Path, postgres_admin_url: str, amqp_url: str) -> None:
    customer = uuid4()
    ports = {name: free_port() for name in SERVICES}
    with empty_database(postgres_admin_url) as database_url:
        async with own_broker_topology(amqp_url) as broker:
            env = clean_env(database_url=database_url, jwt_secret=TEST_SECRET, host="127.0.0.1",
                            shutdown_timeout=str(SHUTDOWN_TIMEOUT), read_your_writes_timeout="8",
                            **{PORT_SETTING[n]: str(p) for n, p in ports.items()},
                            **broker_env(broker))
            await talk_command("migrate", env=env, cwd=tmp_path)
            tap = await Tap.open(broker, f"{customer}.#")
            try:
                async with talk_processes() as running, aiohttp.ClientSession() as session:
                    services = Services(session, ports)
                    for name in SERVICES:
                        services.procs[name] = await TalkProcess.start(name, env=env, cwd=tmp_path)
                        running.append(services.procs[name])
                    await _all_ready(services)
                    await _flow_then_drain(services, customer, database_url, tap)
            finally:
                await tap.close()


async def _all_ready(services: Services) -> None:
    for name in SERVICES:
        await wait_until(lambda n=name: _ready(services, n), timeout=60,
                         what=f"{name} /readyz 200")
        assert await _status(services.session, f"{services.base(name)}/livez") == 200


async def _flow_then_drain(services: Services, customer: UUID, database_url: str,
                           tap: Tap) -> None:
    api = Api(services.session, write=services.base("command-api"),
              read=services.base("query-api"))
    alice = agent_with_secret(api, customer)
    bob = agent_with_secret(api, customer)
    socket = await subscribed_socket(services.session, services.base("gateway"), alice)
    tutorial = await run_tutorial(alice, bob)
    frame = await frame_for(socket, "message_created", tutorial.hello["id"])
    assert frame["topic"] == f"agent:{alice.id}" and frame["resume_token"]
    await _check_metrics(services)

    # SIGTERM with a command and a read in flight: the command waits on a lock the test
    # holds, the read waits (X-Talk-Min-Position) for a write the projection cannot apply
    # yet (the test's open transaction holds the projector below it).
    draining = ("command-api", "query-api", "gateway")
    async with await psycopg.AsyncConnection.connect(database_url) as blocker:
        await blocker.execute("SELECT pg_current_xact_id()")  # the projector stops below it
        pending = await alice.command("POST", MESSAGES, {
            "chat_id": tutorial.chat["id"], "type": "normal", "text": "not projected yet"})
        await blocker.execute("LOCK TABLE events IN SHARE MODE")  # holds appends back
        command = asyncio.create_task(bob.command(
            "POST", MESSAGES, {"chat_id": tutorial.chat["id"], "type": "normal",
                               "text": "sent as the services stop"}))
        await wait_until(lambda: _waiting_on_lock(blocker, "talk-command-api"),
                         what="the command to wait on the lock")
        read = asyncio.create_task(alice.query(MESSAGES, {"chat_id": tutorial.chat["id"]}))
        await wait_until(lambda: _in_flight(services, "query-api"),
                         what="the read to be in flight")
        for name in draining:
            services.procs[name].send(signal.SIGTERM)
        for name in draining:
            await wait_until(lambda n=name: _refuses_connections(services.ports[n]),
                             what=f"{name} to stop accepting")
        assert not command.done() and not read.done()
        await blocker.rollback()  # ends the lock's transaction: the append goes on
    posted = await command
    listed = await read
    assert pending["id"] in [m["id"] for m in listed["result"]]
    assert await close_code(socket) == 1001  # going away
    for name in draining:
        code = await services.procs[name].exit_code(SHUTDOWN_TIMEOUT + EXIT_MARGIN)
        assert code == 0, services.procs[name].output()

    # The last message still reaches the broker; then the projector stops too.
    await wait_until(lambda: _published(tap, posted["id"]), timeout=20,
                     what="the last message through RabbitMQ")
    projector = services.procs["projector"]
    assert await projector.stop(signal.SIGTERM, SHUTDOWN_TIMEOUT + EXIT_MARGIN) == 0, \
        projector.output()
    for name, proc in services.procs.items():
        _assert_json_logs(name, proc.stderr)


async def _ready(services: Services, name: str) -> bool:
    proc = services.procs[name]
    assert proc.running, proc.output()
    return await _status(services.session, f"{services.base(name)}/readyz") == 200


async def _in_flight(services: Services, name: str) -> bool:
    value = _sample(await _metrics(services.session, services.base(name)),
                    "talk_http_requests_in_flight", service=name)
    return bool(value and value >= 1)


async def _published(tap: Tap, message_id: str) -> bool:
    return any(r.body["data"]["id"] == message_id for r in tap.of_type("message_created"))


async def _check_metrics(services: Services) -> None:
    """Each service's /metrics shows what that service does."""
    def get(name: str) -> Awaitable[str]:
        return _metrics(services.session, services.base(name))

    command = await get("command-api")
    # hello, the reply, and the two "joined" system messages
    assert _sample(command, "talk_events_appended_total", type="MessagePosted") == 4
    assert _sample(command, "talk_http_request_seconds_count", service="command-api",
                   route="/v1.0/service_agents/talk_messages", method="POST", status="200") == 2
    query = await get("query-api")
    assert _sample(query, "talk_http_request_seconds_count", service="query-api",
                   route="/v1.0/service_agents/talk_messages", method="GET", status="200") == 1
    assert _sample(query, "talk_events_appended_total") is None  # not its job
    projector = await get("projector")
    assert _sample(projector, "talk_projector_active") == 1
    assert (_sample(projector, "talk_events_projected_total") or 0) >= 7
    assert _sample(projector, "talk_projection_lag_events") is not None

    async def caught_up() -> bool:  # every write was read back, so nothing is pending
        text = await get("projector")
        return (_sample(text, "talk_projection_lag_events"),
                _sample(text, "talk_projection_lag_seconds")) == (0, 0)

    await wait_until(caught_up, what="the projection lag to read 0 events and 0 seconds")
    assert _sample(projector, "talk_publish_lag_events") is not None
    gateway = await get("gateway")
    assert _sample(gateway, "talk_gateway_connected_sockets") == 1
    assert _sample(gateway, "talk_events_projected_total") is None


def _assert_json_logs(name: str, lines: list[str]) -> None:
    assert lines, f"{name} logged nothing"
    for line in lines:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            raise AssertionError(f"{name} logged a line that is not JSON: {line!r}") from None
        assert {"event", "level", "timestamp"} <= record.keys(), line
