"""Real-time delivery: POST → WebSocket frame latency beside its floor, CPU per message per
service, and gateway memory per idle socket (issues 4 and 11).

    python -m bench.realtime [--rates 60,250,500] [--sockets 200] [--talk-size 10]
                             [--seconds 10] [--idle-sockets 5000] [--admin-url URL]
                             [--amqp-url URL] [--skip-memory] [--skip-latency] [--profile DIR]

What runs: a fresh database (``talk_bench_rt_<pid>``, migrated, dropped at the end) and an
exchange + stream queue of this run's own on the local RabbitMQ (deleted at the end); the
services as separate processes exactly as deployed: ``talk command-api``, ``talk projector``
(projector + outbox publisher) and ``talk gateway``; the clients in more processes (this one
posts, a receiver process holds the sockets and a tap on the stream, a floor process).

Latency, for each of ``--rates`` in turn: ``--sockets`` agents in talks of ``--talk-size``
(one socket each, subscribed to its talk's ``chat:`` topic); messages are POSTed open-loop at
the rate (round-robin over the talks, each by one of its participants, at most 64 in flight)
for ``--seconds``. For every POST the time its response arrived is recorded; for every frame
the time the socket received it (``time.monotonic``: one clock for every process of the
machine). The delay of a frame is frame time - response time (negative when the frame
overtakes the response). Printed as p50/p99/max, beside:

``floor``   the least the same work costs, in its own process at the same rate over the same
            window: per message an INSERT + COMMIT, then a publish (with confirms) to a topic
            exchange → stream queue → ``x-stream-offset`` consumer; from just before the INSERT
            to the delivery;
``stream``  POST response → the event's message seen by a tap consumer on the stream (what
            the projector and publisher add), and stream → frame (what the gateway adds:
            the tap and the sockets are in the same receiver process), to split the path.

CPU per message: each service's CPU time (``/proc/<pid>/stat``) over the posting window
divided by the messages posted (Postgres and RabbitMQ not included), and the floor process's.

A rate is "sustained" when the POSTs went out at >= 95 % of it, every frame arrived, and no
queue built up (the median delay of the last quarter of the POSTs is at most twice the first
quarter's + 50 ms).

Memory: a fresh gateway process idle; its RSS (``/proc/<pid>/status``) is read, then
``--idle-sockets`` sockets are opened and subscribed (``agent:<own id>``), and RSS read
again: (after - before) / sockets. Baseline in the same run: a bare aiohttp WebSocket server
(same heartbeat, no compression, answers the subscribe) measured the same way. The fd limit
of this process and its children is raised to the hard limit.

Nothing is asserted: the targets (at the lowest rate p50 <= 2x and p99 <= 3x the floor's; at
250/s <= 1.8 ms of CPU per message across the services; every rate sustained; <= 20 KiB per
idle socket) are printed beside the figures. ``--profile DIR`` runs the services under
cProfile (``DIR/<service>.prof``, written when they stop) to see where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
import traceback
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from uuid import UUID, uuid4

import aio_pika
import aiohttp
import orjson
import psycopg
from psycopg import sql

from services.auth import mint_token

SECRET = "bench-realtime-secret-0123456789abcdef"
TARGET_P50_RATIO, TARGET_P99_RATIO = 2.0, 3.0  # POST -> frame against the floor, lowest rate
TARGET_CPU_MS = 1.8  # CPU per message of command API + projector + gateway at 250/s
TARGET_KIB_PER_SOCKET = 20.0
MAX_IN_FLIGHT = 64
TEXT = ("Hi! I checked the order with the warehouse: the replacement left this morning and "
        "the tracking link should work tonight.")
ROOT = Path(__file__).resolve().parent.parent


# --- infrastructure --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + fields[4]
    total = sum(fields[:8])
    return total - idle, total


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class Infra:
    admin_url: str
    amqp_url: str
    dbname: str = field(default_factory=lambda: f"talk_bench_rt_{os.getpid()}")
    exchange: str = field(default_factory=lambda: f"talk.bench.{os.getpid()}")

    @property
    def stream_queue(self) -> str:
        return f"{self.exchange}.stream"

    @property
    def database_url(self) -> str:
        return psycopg.conninfo.make_conninfo(self.admin_url, dbname=self.dbname)

    def create(self) -> None:
        from services.migrate import apply_migrations

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.dbname)))
        asyncio.run(apply_migrations(self.database_url))

    def drop(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(self.dbname)))
        asyncio.run(self._delete_stream())

    async def _delete_stream(self) -> None:
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            for queue in (self.stream_queue, f"{self.exchange}.floor"):
                await channel.queue_delete(queue)
            for exchange in (self.exchange, f"{self.exchange}.floor"):
                await channel.exchange_delete(exchange)

    def env(self, **ports: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "TALK_DATABASE_URL": self.database_url, "TALK_AMQP_URL": self.amqp_url,
            "TALK_JWT_SECRET": SECRET, "TALK_EXCHANGE": self.exchange,
            "TALK_STREAM_QUEUE": self.stream_queue, "TALK_HOST": "127.0.0.1",
            "TALK_LOG_LEVEL": "WARNING", "TALK_DB_POOL_MAX_SIZE": "20",
            "PYTHONPATH": str(ROOT),
        })
        env.update({f"TALK_{k.upper()}": str(v) for k, v in ports.items()})
        return env


class Service:
    """One ``talk <command>`` process (or another command), stopped with SIGTERM."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], port: int) -> None:
        self.name = name
        self.port = port
        self.log = open(f"/tmp/bench-realtime-{os.getpid()}-{name}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=ROOT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def ready(self, session: aiohttp.ClientSession, path: str = "/readyz",
                    timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.proc.returncode}); "
                                   f"see {self.log.name}")
            with suppress(aiohttp.ClientError):
                async with session.get(f"http://127.0.0.1:{self.port}{path}") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} not ready after {timeout}s; see {self.log.name}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


PROFILE_DIR: str | None = None  # --profile: run the services under cProfile, files here


# cProfile on CPU time (not wall time: on a busy machine a process waits for a core inside
# its system calls, and wall time would charge that to them); the stats are written on exit.
PROFILED = """
import cProfile, runpy, sys, time
profile = cProfile.Profile(time.process_time)
sys.argv = ["services.cli", sys.argv[2]]
profile.enable()
try:
    runpy.run_module("services.cli", run_name="__main__", alter_sys=True)
finally:
    profile.disable()
    profile.dump_stats(OUT)
"""


def talk_service(command: str, env: dict[str, str], port: int) -> Service:
    if PROFILE_DIR:
        code = PROFILED.replace("OUT", repr(f"{PROFILE_DIR}/{command}.prof"))
        return Service(command, [sys.executable, "-c", code, "-", command], env, port)
    return Service(command, [sys.executable, "-m", "services.cli", command], env, port)


BARE_WS_SERVER = """
import asyncio, sys
from aiohttp import web, WSMsgType
async def ws(request):
    w = web.WebSocketResponse(heartbeat=30.0, compress=False)
    await w.prepare(request)
    async for m in w:
        if m.type is WSMsgType.TEXT:
            await w.send_str('{"type":"subscribed"}')
    return w
app = web.Application()
app.router.add_get("/v1.0/ws", ws)
app.router.add_get("/readyz", lambda r: web.json_response({"status": "ok"}))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


# --- percentiles -------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _ratio(values: list[float], floor: list[float], q: float) -> str:
    if not values or not floor or pct(floor, q) <= 0:
        return "-"
    return f"{pct(values, q) / pct(floor, q):.1f}x"


def summary_ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"p50 {pct(ms, 0.50):7.1f} ms  p99 {pct(ms, 0.99):7.1f} ms  "
            f"max {max(ms) if ms else float('nan'):7.1f} ms  (n={len(ms):,})")


# --- the floor: INSERT + COMMIT, then RabbitMQ publish -> stream consume, own process ------


@dataclass
class FloorPlan:
    database_url: str
    amqp_url: str
    exchange: str
    rate: float
    seconds: float
    start_at: float  # time.monotonic() at which to start (the same window as the POSTs)


def floor_main(pipe, plan: FloorPlan) -> None:
    try:
        pipe.send(asyncio.run(_floor(plan)))
    except BaseException:
        pipe.send(("failed", traceback.format_exc()))
        raise


async def _floor(plan: FloorPlan) -> tuple[list[float], float]:
    """The least the live path can cost at this rate: per message an INSERT + COMMIT (the
    projector's batch), then a publish with confirms to a topic exchange -> stream queue ->
    ``x-stream-offset`` consumer (the publisher and the gateway's consumer). Delay: from just
    before the INSERT to the delivery. Returns the delays and this process's CPU seconds."""
    from psycopg_pool import AsyncConnectionPool

    exchange_name = queue_name = f"{plan.exchange}.floor"
    pool = AsyncConnectionPool(plan.database_url, min_size=4, max_size=4, open=False)
    await pool.open(wait=True)
    connection = await aio_pika.connect(plan.amqp_url)
    async with connection:
        async with pool.connection() as conn:
            await conn.execute("CREATE TABLE IF NOT EXISTS bench_floor"
                               " (id uuid PRIMARY KEY, body jsonb NOT NULL)")
            await conn.commit()
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(exchange_name, aio_pika.ExchangeType.TOPIC,
                                                  durable=True)
        queue = await channel.declare_queue(queue_name, durable=True,
                                            arguments={"x-queue-type": "stream"})
        await queue.bind(exchange, "#")
        # The consumer reads the stream as the gateway does: raw channel, acks in batches.
        consumer_channel = await connection.channel()
        await consumer_channel.set_qos(prefetch_count=1000)
        raw = await consumer_channel.get_underlay_channel()
        sent: dict[str, float] = {}
        delays: list[float] = []
        n = int(plan.rate * plan.seconds)
        all_in = asyncio.Event()
        unacked = 0

        async def on_message(message) -> None:
            nonlocal unacked
            now = time.monotonic()
            started = sent.pop(message.header.properties.message_id or "", None)
            if started is not None:
                delays.append(now - started)
                if len(delays) == n:
                    all_in.set()
            unacked += 1
            if unacked >= 250:
                unacked = 0
                await raw.basic_ack(message.delivery.delivery_tag, multiple=True)

        await raw.basic_consume(queue_name, on_message, arguments={"x-stream-offset": "next"})
        body = orjson.dumps({"type": "message_created", "data": {"text": TEXT}})
        in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)
        tasks: list[asyncio.Task] = []

        async def one(message_id: str) -> None:
            async with in_flight:
                sent[message_id] = time.monotonic()
                async with pool.connection() as conn:
                    await conn.execute("INSERT INTO bench_floor (id, body) VALUES (%s, %s)",
                                       (message_id, body.decode()))
                    await conn.commit()
                await exchange.publish(aio_pika.Message(body, message_id=message_id),
                                       routing_key="c.t.message_created")

        cpu0 = time.process_time()
        await asyncio.sleep(max(0.0, plan.start_at - time.monotonic()))
        start = time.monotonic()
        for i in range(n):
            delay = start + i / plan.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(str(uuid4()))))
        await asyncio.gather(*tasks)
        with suppress(TimeoutError):
            await asyncio.wait_for(all_in.wait(), 10)
        cpu = time.process_time() - cpu0
    await pool.close()
    return delays, cpu


# --- the receiver process: the sockets and a tap on the stream ----------------------------


@dataclass
class Plan:
    gateway_url: str
    customer_id: UUID
    talks: list[tuple[str, list[UUID]]]  # (chat id, participants)
    amqp_url: str
    stream_queue: str


def receiver_main(pipe, plan: Plan) -> None:
    raise_fd_limit()
    try:
        asyncio.run(_receiver(pipe, plan))
    except BaseException:
        pipe.send(("failed", traceback.format_exc()))
        raise


async def receive_from(receiver, pipe) -> object:
    """The receiver's next message; raises if it failed or died."""
    while not pipe.poll(0):
        if not receiver.is_alive():
            raise RuntimeError(f"the receiver process died ({receiver.exitcode})")
        await asyncio.sleep(0.05)
    message = pipe.recv()
    if isinstance(message, tuple) and message and message[0] == "failed":
        raise RuntimeError(f"the receiver process failed:\n{message[1]}")
    return message


async def _receiver(pipe, plan: Plan) -> None:
    frames: list[tuple[str, float]] = []
    tapped: dict[str, float] = {}
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_command() -> None:
        command = pipe.recv()
        if command == "count":
            pipe.send(len(frames))
        elif command == "stop":
            stop.set()

    loop.add_reader(pipe.fileno(), on_command)
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        sockets = []
        for chat_id, members in plan.talks:
            for agent in members:
                token = mint_token(SECRET, plan.customer_id, agent, 7200)
                ws = await session.ws_connect(f"{plan.gateway_url}/v1.0/ws?token={token}",
                                              autoping=True, max_msg_size=0)
                await _subscribe_until_accepted(ws, f"chat:{chat_id}")
                sockets.append(ws)

        async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
            async for msg in ws:
                if msg.type is aiohttp.WSMsgType.TEXT:
                    now = time.monotonic()
                    frame = orjson.loads(msg.data)
                    if frame.get("type") == "message_created":
                        frames.append((frame["data"]["id"], now))

        readers = [asyncio.create_task(read(ws)) for ws in sockets]
        connection = await aio_pika.connect(plan.amqp_url)
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1000)
        queue = await channel.get_queue(plan.stream_queue, ensure=False)

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            now = time.monotonic()
            body = orjson.loads(message.body)
            if body.get("type") == "message_created":
                tapped[body["data"]["id"]] = now
            await message.ack()

        await queue.consume(on_message, arguments={"x-stream-offset": "next"})
        pipe.send("ready")
        await stop.wait()
        for ws in sockets:
            await ws.close()
        for task in readers:
            task.cancel()
        await connection.close()
    pipe.send((frames, tapped))


async def _subscribe_until_accepted(ws: aiohttp.ClientWebSocketResponse, topic: str) -> None:
    """Subscribe; while the talk is not projected yet the gateway answers not_found."""
    deadline = time.monotonic() + 30
    while True:
        await ws.send_str(orjson.dumps({"type": "subscribe", "topics": [topic]}).decode())
        frame = orjson.loads((await ws.receive(timeout=10)).data)
        if frame["type"] == "subscribed":
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"could not subscribe to {topic}: {frame}")
        await asyncio.sleep(0.05)


# --- posting -------------------------------------------------------------------------------


@dataclass
class Posting:
    target_rate: float
    responses: dict[str, float]
    post_seconds: list[float]
    elapsed: float
    errors: int

    @property
    def achieved_rate(self) -> float:
        return len(self.responses) / self.elapsed if self.elapsed else 0.0


async def post_messages(session: aiohttp.ClientSession, api: str, customer_id: UUID,
                        talks: list[tuple[str, list[UUID]]], rate: float,
                        seconds: float) -> Posting:
    headers = {}
    for chat_id, members in talks:
        headers[chat_id] = [{"Authorization": f"Bearer {mint_token(SECRET, customer_id, m, 7200)}"}
                            for m in members]
    responses: dict[str, float] = {}
    post_seconds: list[float] = []
    errors = 0
    in_flight = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def post(chat_id: str, auth: dict[str, str]) -> None:
        nonlocal errors
        async with in_flight:
            started = time.monotonic()
            async with session.post(f"{api}/v1.0/service_agents/talk_messages", headers=auth,
                                    json={"chat_id": chat_id, "type": "normal",
                                          "text": TEXT}) as resp:
                body = await resp.read()
                now = time.monotonic()
            if resp.status != 200:
                errors += 1
                return
            responses[orjson.loads(body)["id"]] = now
            post_seconds.append(now - started)

    tasks = []
    n = int(rate * seconds)
    start = time.monotonic()
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        chat_id, members = talks[i % len(talks)]
        auth = headers[chat_id][(i // len(talks)) % len(members)]
        tasks.append(asyncio.create_task(post(chat_id, auth)))
    await asyncio.gather(*tasks)
    return Posting(rate, responses, post_seconds, time.monotonic() - start, errors)


# --- the latency run -------------------------------------------------------------------------


def backlog_grew(posting: Posting, frames: list[tuple[str, float]]) -> bool:
    """Whether delays grew over the window (a queue building up somewhere): the median
    delay of the last quarter of the POSTs against the first quarter's."""
    ordered = sorted(posting.responses.items(), key=lambda kv: kv[1])
    quarter = max(1, len(ordered) // 4)
    first, last = dict(ordered[:quarter]), dict(ordered[-quarter:])
    early = [t - first[m] for m, t in frames if m in first]
    late = [t - last[m] for m, t in frames if m in last]
    if not early or not late:
        return True
    return statistics.median(late) > 2 * statistics.median(early) + 0.050


@dataclass
class LatencyResult:
    rate: float
    posting: Posting
    delays: list[float]
    stream_delays: list[float]
    gateway_delays: list[float]
    expected_frames: int
    floor: list[float]
    cpu: dict[str, float]  # share of one core while posting, per process
    cpu_ms_per_message: dict[str, float]  # CPU milliseconds per message posted, per process
    sustained: bool
    reads: dict[str, float]  # the projector's reads of the store, by outcome


async def make_talks(session: aiohttp.ClientSession, api: str, customer_id: UUID, sockets: int,
                     talk_size: int) -> list[tuple[str, list[UUID]]]:
    talks = []
    for _ in range(max(1, sockets // talk_size)):
        members = [uuid4() for _ in range(talk_size)]
        auth = {"Authorization": f"Bearer {mint_token(SECRET, customer_id, members[0], 7200)}"}
        async with session.post(f"{api}/v1.0/service_agents/talk_chats", headers=auth, json={
                "type": "group", "name": "bench",
                "participants": [{"owner_type": "agent", "owner_id": str(m)}
                                 for m in members[1:]]}) as resp:
            assert resp.status == 200, await resp.text()
            talks.append(((await resp.json())["id"], members))
    return talks


async def latency_run(infra: Infra, services: dict[str, Service], gateway_url: str, api: str,
                      talks: list[tuple[str, list[UUID]]], customer_id: UUID, rate: float,
                      seconds: float, progress) -> LatencyResult:
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    plan = Plan(gateway_url, customer_id, talks, infra.amqp_url, infra.stream_queue)
    receiver = ctx.Process(target=receiver_main, args=(child, plan), daemon=True)
    receiver.start()
    ready = await receive_from(receiver, parent)
    assert ready == "ready", ready
    progress(f"rate {rate:,.0f}/s: {sum(len(m) for _, m in talks)} sockets subscribed")
    connector = aiohttp.TCPConnector(limit=MAX_IN_FLIGHT)
    async with aiohttp.ClientSession(connector=connector) as session:
        progress(f"rate {rate:,.0f}/s: warm-up")
        await post_messages(session, api, customer_id, talks, min(rate, 200), 1.0)
        # The floor in its own process, over the same window as the POSTs.
        floor_pipe, floor_child = ctx.Pipe()
        floor_plan = FloorPlan(infra.database_url, infra.amqp_url, infra.exchange, rate,
                               seconds, time.monotonic() + 2.0)
        floor_proc = ctx.Process(target=floor_main, args=(floor_child, floor_plan),
                                 daemon=True)
        floor_proc.start()
        await asyncio.sleep(max(0.0, floor_plan.start_at - time.monotonic()))
        cpu0 = {name: cpu_seconds(s.pid) for name, s in services.items()}
        ticks0 = machine_ticks()
        reads0 = await projector_reads(session, services["projector"].port)
        progress(f"rate {rate:,.0f}/s: posting for {seconds:g}s, the floor beside it")
        posting = await post_messages(session, api, customer_id, talks, rate, seconds)
        cpu_seconds_used = {name: cpu_seconds(s.pid) - cpu0[name]
                            for name, s in services.items()}
        ticks1 = machine_ticks()
        reads1 = await projector_reads(session, services["projector"].port)
    reads = {k: reads1.get(k, 0) - reads0.get(k, 0) for k in reads1}
    floor, floor_cpu = await receive_from(floor_proc, floor_pipe)
    floor_proc.join(10)
    cpu = {name: used / posting.elapsed for name, used in cpu_seconds_used.items()}
    cpu["machine (both cores, anyone)"] = (ticks1[0] - ticks0[0]) / max(1, ticks1[1] - ticks0[1])
    posted = max(1, len(posting.responses))
    cpu_ms_per_message = {name: used * 1000 / posted for name, used in cpu_seconds_used.items()}
    cpu_ms_per_message["floor process"] = floor_cpu * 1000 / max(1, len(floor))
    expected = len(posting.responses) * len(talks[0][1])
    # Frames still on their way: wait while they keep coming (the count includes a few
    # warm-up frames, so it is only a hint), at most a minute.
    deadline, last_count, last_change = time.monotonic() + 60, -1, time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last_change < 3.0:
        parent.send("count")
        count = await receive_from(receiver, parent)
        if count != last_count:
            last_count, last_change = count, time.monotonic()
        await asyncio.sleep(0.2)
    parent.send("stop")
    frames, tapped = await receive_from(receiver, parent)
    receiver.join(10)
    delays = [t - posting.responses[mid] for mid, t in frames if mid in posting.responses]
    stream_delays = [t - posting.responses[mid] for mid, t in tapped.items()
                     if mid in posting.responses]
    gateway_delays = [t - tapped[mid] for mid, t in frames
                      if mid in posting.responses and mid in tapped]
    sustained = (posting.achieved_rate >= 0.95 * rate and len(delays) >= expected
                 and posting.errors == 0 and not backlog_grew(posting, frames))
    return LatencyResult(rate, posting, delays, stream_delays, gateway_delays, expected, floor,
                         cpu, cpu_ms_per_message, sustained, reads)


async def projector_reads(session: aiohttp.ClientSession, port: int) -> dict[str, float]:
    """``talk_projector_reads_total`` by outcome, from the projector's /metrics (empty if it
    has none)."""
    async with session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    reads = {}
    for line in text.splitlines():
        if line.startswith("talk_projector_reads_total{"):
            labels, value = line.rsplit(" ", 1)
            reads[labels.split('outcome="')[1].split('"')[0]] = float(value)
    return reads


# --- the memory run ---------------------------------------------------------------------------


async def open_idle_sockets(session: aiohttp.ClientSession, url: str, n: int,
                            tokens: list[tuple[str, UUID]]) -> list:
    sockets = []
    batch = 250
    for i in range(0, n, batch):
        async def one(token: str, agent: UUID):
            ws = await session.ws_connect(f"{url}/v1.0/ws?token={token}", autoping=True)
            await ws.send_str(orjson.dumps({"type": "subscribe",
                                            "topics": [f"agent:{agent}"]}).decode())
            msg = await ws.receive(timeout=30)
            assert orjson.loads(msg.data)["type"] == "subscribed", msg
            return ws

        sockets += await asyncio.gather(*(one(t, a) for t, a in tokens[i:i + batch]))
    return sockets


async def measure_memory(name: str, service: Service, n: int) -> tuple[int, int, float]:
    customer_id = uuid4()
    tokens = [(mint_token(SECRET, customer_id, a, 7200), a) for a in
              (uuid4() for _ in range(n))]
    url = f"http://127.0.0.1:{service.port}"
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        await service.ready(session)
        warm = await open_idle_sockets(session, url, 100, tokens[:100])  # warm code paths
        for ws in warm:
            await ws.close()
        await asyncio.sleep(1.0)
        before = rss_kib(service.pid)
        sockets = await open_idle_sockets(session, url, n, tokens)
        await asyncio.sleep(2.0)
        after = rss_kib(service.pid)
        for ws in sockets:
            await ws.close()
    return before, after, (after - before) / n


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.realtime",
                                description=__doc__.split("\n")[0])
    p.add_argument("--sockets", type=int, default=200)
    p.add_argument("--talk-size", type=int, default=10, help="participants per talk")
    p.add_argument("--rates", type=lambda text: [float(r) for r in text.split(",")],
                   default=[60.0, 250.0, 500.0],
                   help="POSTs per second, each measured in turn (default 60,250,500)")
    p.add_argument("--seconds", type=float, default=10.0, help="measured seconds per rate")
    p.add_argument("--idle-sockets", type=int, default=5000)
    p.add_argument("--profile", metavar="DIR",
                   help="run the services under cProfile, writing DIR/<service>.prof")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--skip-latency", action="store_true")
    p.add_argument("--admin-url", default=os.environ.get(
        "TALK_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    p.add_argument("--amqp-url", default=os.environ.get(
        "TALK_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    global PROFILE_DIR
    args = parse_args(argv)
    PROFILE_DIR = args.profile
    fd_limit = raise_fd_limit()
    started = time.monotonic()

    def progress(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    infra = Infra(args.admin_url, args.amqp_url)
    infra.create()
    progress(f"database {infra.dbname}, exchange {infra.exchange}; fd limit {fd_limit}")
    services: dict[str, Service] = {}
    try:
        results, memory = asyncio.run(_run(args, infra, services, progress))
    finally:
        for s in services.values():
            s.stop()
        infra.drop()
    print(report(args, results, memory, time.monotonic() - started))


async def _run(args, infra: Infra, services: dict[str, Service], progress):
    ports = {"command_api_port": free_port(), "gateway_port": free_port(),
             "projector_port": free_port()}
    env = infra.env(**ports)
    memory: dict[str, tuple[int, int, float]] = {}
    results: list[LatencyResult] = []
    async with aiohttp.ClientSession() as session:
        if not args.skip_memory:
            gateway = talk_service("gateway", env, ports["gateway_port"])
            services["gateway"] = gateway
            progress(f"memory: {args.idle_sockets:,} idle sockets on the gateway")
            memory["gateway"] = await measure_memory("gateway", gateway, args.idle_sockets)
            bare_port = free_port()
            bare = Service("bare-aiohttp", [sys.executable, "-c", BARE_WS_SERVER,
                                            str(bare_port)], env, bare_port)
            try:
                progress(f"memory: {args.idle_sockets:,} idle sockets on a bare aiohttp server")
                memory["bare aiohttp"] = await measure_memory("bare", bare, args.idle_sockets)
            finally:
                bare.stop()
            gateway.stop()
            del services["gateway"]
        if args.skip_latency:
            return results, memory
        services["command-api"] = talk_service("command-api", env, ports["command_api_port"])
        services["projector"] = talk_service("projector", env, ports["projector_port"])
        services["gateway"] = talk_service("gateway", env, ports["gateway_port"])
        for s in services.values():
            await s.ready(session)
        api = f"http://127.0.0.1:{ports['command_api_port']}"
        customer_id = uuid4()
        talks = await make_talks(session, api, customer_id, args.sockets, args.talk_size)
    for rate in args.rates:
        result = await latency_run(infra, services, f"http://127.0.0.1:{ports['gateway_port']}",
                                   api, talks, customer_id, rate, args.seconds, progress)
        results.append(result)
        progress(f"rate {rate:,.0f}/s: achieved {result.posting.achieved_rate:,.0f}/s, "
                 f"delay {summary_ms(result.delays)}, floor {summary_ms(result.floor)}, "
                 f"{'sustained' if result.sustained else 'NOT sustained'}; CPU ms/message "
                 + ", ".join(f"{k} {v:.2f}" for k, v in result.cpu_ms_per_message.items()))
    return results, memory


def report(args, results: list[LatencyResult], memory: dict, wall: float) -> str:
    out = [f"bench.realtime: os.cpu_count()={os.cpu_count()}, wall time {wall:.0f}s; services "
           "as separate processes (command-api, projector+publisher, gateway), clients in two "
           "more processes, Postgres and RabbitMQ on the same machine"]
    if results:
        first = results[0]
        out.append(f"latency: {args.sockets} sockets in talks of {args.talk_size} "
                   f"({first.expected_frames // max(1, len(first.posting.responses))}"
                   f" frames per message), {args.seconds:g}s per rate, open-loop POSTs "
                   f"(<= {MAX_IN_FLIGHT} in flight); the floor (INSERT + COMMIT, publish -> "
                   "consume) in its own process over the same window")
        out.append("")
        out.append("| rate | achieved | sustained | POST → frame p50 / p99 / max (ms) "
                   "| floor p50 / p99 / max (ms) | ratio p50 / p99 "
                   "| POST → stream p50 / p99 (ms) | stream → frame p50 / p99 (ms) "
                   "| POST latency p50 / p99 (ms) | frames | on the stream |")
        out.append("|---:|---:|:---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in results:
            d = [x * 1000 for x in r.delays]
            s = [x * 1000 for x in r.stream_delays]
            g = [x * 1000 for x in r.gateway_delays]
            f = [x * 1000 for x in r.floor]
            p = [x * 1000 for x in r.posting.post_seconds]
            out.append(
                f"| {r.rate:,.0f}/s | {r.posting.achieved_rate:,.0f}/s | "
                f"{'yes' if r.sustained else 'no'} | {pct(d, .5):.1f} / {pct(d, .99):.1f} / "
                f"{max(d) if d else float('nan'):.1f} | "
                f"{pct(f, .5):.1f} / {pct(f, .99):.1f} / {max(f) if f else float('nan'):.1f} | "
                f"{_ratio(d, f, .5)} / {_ratio(d, f, .99)} | "
                f"{pct(s, .5):.1f} / {pct(s, .99):.1f} | {pct(g, .5):.1f} / {pct(g, .99):.1f} | "
                f"{pct(p, .5):.1f} / {pct(p, .99):.1f} | {len(r.delays):,} of "
                f"{r.expected_frames:,} | {len(r.stream_delays):,} of "
                f"{len(r.posting.responses):,} |")
        out.append("")
        names = [k for k in first.cpu_ms_per_message if k != "floor process"]
        out.append("CPU per message posted (ms), while posting; share of one core in brackets")
        out.append("| rate | " + " | ".join(names) + " | services together | floor process "
                   "| machine busy (both cores, anyone) |")
        out.append("|---:|" + "---:|" * (len(names) + 3))
        for r in results:
            per = r.cpu_ms_per_message
            out.append(f"| {r.rate:,.0f}/s | " + " | ".join(
                f"{per[k]:.2f} ({r.cpu[k]:.0%})" for k in names)
                + f" | **{sum(per[k] for k in names):.2f}** | {per['floor process']:.2f} | "
                f"{r.cpu['machine (both cores, anyone)']:.0%} |")
        out.append("")
        for r in results:
            held = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(r.reads.items()))
            out.append(f"  rate {r.rate:,.0f}/s: POST errors {r.posting.errors}; frames before "
                       f"their POST's response {sum(1 for x in r.delays if x < 0):,}; the "
                       f"projector's reads: {held or 'not counted'}")
        out.append(f"targets: at the lowest rate p50 <= {TARGET_P50_RATIO:g}x and p99 <= "
                   f"{TARGET_P99_RATIO:g}x the floor's; CPU per message of the services <= "
                   f"{TARGET_CPU_MS:g} ms at 250/s; every rate sustained, nothing missing")
        low = results[0]
        d, f = low.delays, low.floor
        if d and f:
            p50r, p99r = pct(d, .5) / pct(f, .5), pct(d, .99) / pct(f, .99)
            out.append(f"  {low.rate:,.0f}/s: p50 {p50r:.1f}x, p99 {p99r:.1f}x the floor -> "
                       f"{'met' if p50r <= TARGET_P50_RATIO and p99r <= TARGET_P99_RATIO else 'NOT met'}")
        for r in results:
            if r.rate == 250:
                total = sum(r.cpu_ms_per_message[k] for k in names)
                out.append(f"  250/s: {total:.2f} ms of CPU per message -> "
                           f"{'met' if total <= TARGET_CPU_MS else 'NOT met'}")
        out.append("  sustained: " + ", ".join(
            f"{r.rate:,.0f}/s {'yes' if r.sustained else 'NO'}" for r in results))
        if any(not r.sustained for r in results):
            out.append("  (not sustained: the POSTs fell behind the target rate, frames were "
                       "missing, or delays grew over the window)")
    if memory:
        out.append("")
        out.append(f"memory: {args.idle_sockets:,} idle sockets (each subscribed to one topic)")
        out.append("| server | RSS before (MiB) | RSS with sockets (MiB) | per socket (KiB) |")
        out.append("|---|---:|---:|---:|")
        for name, (before, after, per) in memory.items():
            out.append(f"| {name} | {before / 1024:.1f} | {after / 1024:.1f} | {per:.1f} |")
        per = memory.get("gateway", (0, 0, float("nan")))[2]
        out.append(f"target: <= {TARGET_KIB_PER_SOCKET:.0f} KiB per idle socket -> {per:.1f} KiB "
                   f"({'met' if per <= TARGET_KIB_PER_SOCKET else 'NOT met'})")
    return "\n".join(out)


if __name__ == "__main__":
    main()

