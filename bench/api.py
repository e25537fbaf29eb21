"""The HTTP API under load (issue 3): posting and listing messages through ``talk up``, side by
side with a bare aiohttp endpoint (the ceiling of this stack), plus the two scaling checks.

    python -m bench.api [--concurrency 16] [--seconds 5] [--warmup 1] [--rounds 3]
                        [--history 100000] [--large 1000000] [--small 10000]
                        [--parts throughput,history,table[,listing,loops,talks]]
                        [--before REV] [--pool 10] [--log-level INFO]
                        [--admin-url postgresql://postgres@127.0.0.1:5432/postgres] [--keep]

Everything runs against the local PostgreSQL in databases of its own, created here and
dropped at the end: ``talk_bench_api_<pid>`` (throughput and history) and
``talk_bench_api_<pid>_large`` / ``_small`` (the read tables). The servers are real processes:
``talk up`` (migrations, command and query API, projector; no RabbitMQ, so nothing is
published) and the ceiling, this module run as ``--serve-ceiling``: an aiohttp app with a
psycopg pool of the same size as talk's that answers ``POST /messages`` with one ``INSERT``
(autocommit: its own transaction, committed) of the posted JSON into a table shaped like
``events``, and ``GET /messages?chat_id=&page_size=`` with the same ``SELECT ... ORDER BY
tm_create DESC, id DESC LIMIT n`` the query API runs. One aiohttp client in this process
drives each system closed-loop at ``--concurrency`` requests in flight; systems alternate cell
by cell in rotating order each round, and every cell gets the same warm-up and measured time.
After each cell that posted, the bench waits (outside the measured time) until the
projection has caught up, so no cell pays for another's projector work; how long that took
is printed. CPU per request is read from /proc for the server process, the PostgreSQL
backends of its database, and this client.

Parts:

``throughput``  ``POST /v1.0/service_agents/talk_messages`` (each client worker posts into a
                talk of its own) vs the ceiling's insert, twice: through ``talk up`` (which
                also projects and delivers on the same two cores), and through ``talk
                command-api`` running alone as it is deployed, with the projector elsewhere:
                ``talk up`` (this run's projector) is stopped with SIGSTOP for that cell and
                continued after it, and how long it then took to project the cell's posts
                is printed. ``GET .../talk_messages?chat_id=&page_size=50`` vs the ceiling's
                select, on the same talk.
``history``     posting into a talk that has ``--history`` messages vs into a fresh talk
                (all workers into the one talk). The messages are real ``MessagePosted``
                events appended through ``PostgresEventStore`` in batches of 1,000 streams
                (one transaction each), then projected by talk's projector before measuring.
``table``       ``GET`` a page of 50 of one talk, the first page and pages at 1%..99% depth
                via ``next_page_token``s, from a read table holding ``--large`` messages of
                that talk vs one holding ``--small`` (each in its own database, behind a
                fresh ``talk up`` started after the other parts). Rows go straight into
                ``rm_messages`` with ``generate_series`` (a read-table benchmark: these rows
                have no events); pairs of rows share a ``tm_create`` so the tie-break on id
                is exercised.

``listing``     (not in the defaults) only the two ``GET`` cells of ``throughput``: a page of 50
                through ``talk up`` vs the ceiling's one select, for the server CPU per page.
``loops``       (not in the defaults) the event loop (``TALK_EVENT_LOOP``): ``talk query-api``
                and ``talk command-api`` each run twice, on asyncio's loop and on uvloop,
                side by side: a page of 50 listed, and posts (``talk up`` paused as above).
``talks``       (not in the defaults) ``GET talk_chats?page_size=50``, the agent's talks with
                its unread and mention counts and each talk's newest message, through ``talk
                query-api`` (this tree, alone: no projector in the process) vs the ceiling's
                one select of the same page of talks (``GET /talks``: the keyset page, no
                viewer's fields). The agent is in ``PAGE + 10`` talks, each with two
                messages of a colleague, one mentioning it (so every talk has counts and a
                newest message). ``--before REV``: a third cell, ``talk query-api`` run from
                the tree of that git revision of this repository (``git archive`` into a
                temporary folder; same database, same loop), for a before/after pair
                measured side by side in the same run.

Targets (printed beside the figures; nothing is asserted): posting >= 60% of the ceiling's
rate; history ratio (mean latency, large history / fresh) <= 1.2; large-table list p99
within 1.3x of the small table's; a page of 50 <= 1.0 ms of server CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID, uuid4

import aiohttp
import orjson
import psycopg
import structlog
from aiohttp import web
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

ROOT = Path(__file__).resolve().parents[1]
TARGET_POST_RATIO = 0.60
TARGET_HISTORY_RATIO = 1.2
TARGET_TABLE_P99_RATIO = 1.3
TARGET_PAGE_CPU_MS = 1.0
LOOPS = ("asyncio", "uvloop")
PAGE = 50
SEED_BATCH = 1000
DEPTHS = (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
TEXT = (
    "Hi! I checked the order with the warehouse: the replacement left this morning and the "
    "tracking link should work tonight. Ping me here if anything looks off."
)
CHATS = "/v1.0/service_agents/talk_chats"
MESSAGES = "/v1.0/service_agents/talk_messages"
MIN_POSITION = "X-Talk-Min-Position"
_CLK_TCK = os.sysconf("SC_CLK_TCK")

# --- the ceiling: a bare aiohttp endpoint (run as ``python -m bench.api --serve-ceiling``) --

CEILING_TABLE = """
CREATE TABLE IF NOT EXISTS bench_ceiling_messages (
    position     bigserial UNIQUE,
    id           uuid PRIMARY KEY,
    chat_id      uuid NOT NULL,
    data         jsonb NOT NULL,
    metadata     jsonb NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now()
)
"""
CEILING_INSERT = ("INSERT INTO bench_ceiling_messages (id, chat_id, data, metadata)"
                  " VALUES (%s, %s, %s, %s) RETURNING position, recorded_at")
CEILING_SELECT = ("SELECT id, chat_id, owner_id, text, tm_create FROM rm_messages"
                  " WHERE chat_id = %s ORDER BY tm_create DESC, id DESC LIMIT %s")
CEILING_TALKS = ("SELECT c.* FROM rm_participants p JOIN rm_chats c ON c.id = p.chat_id"
                 " WHERE p.owner_id = %s AND p.customer_id = %s AND c.customer_id = %s"
                 " AND c.tm_delete IS NULL ORDER BY c.tm_create DESC, c.id DESC LIMIT %s")


def ceiling_app(url: str, pool_size: int) -> web.Application:
    pool = AsyncConnectionPool(url, min_size=pool_size, max_size=pool_size,
                               kwargs={"autocommit": True}, open=False)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await pool.open(wait=True)
        async with pool.connection() as conn:
            await conn.execute(CEILING_TABLE)
        yield
        await pool.close()

    async def post(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        message_id = uuid4()
        async with pool.connection() as conn:
            cur = await conn.execute(CEILING_INSERT, (message_id, body["chat_id"], Jsonb(body),
                                                      Jsonb({"request": "bench"})))
            position, recorded_at = await cur.fetchone()
        return web.Response(body=orjson.dumps({"id": message_id, "chat_id": body["chat_id"],
                                               "text": body.get("text", ""),
                                               "tm_create": recorded_at}),
                            content_type="application/json",
                            headers={"X-Talk-Position": str(position)})

    async def list_(request: web.Request) -> web.Response:
        async with pool.connection() as conn:
            cur = await conn.execute(CEILING_SELECT, (UUID(request.query["chat_id"]),
                                                      int(request.query["page_size"]) + 1))
            rows = await cur.fetchall()
        result = [{"id": r[0], "chat_id": r[1], "owner_id": r[2], "text": r[3],
                   "tm_create": r[4]} for r in rows]
        return web.Response(body=orjson.dumps({"result": result, "next_page_token": ""}),
                            content_type="application/json")

    async def talks(request: web.Request) -> web.Response:
        customer, agent = UUID(request.query["customer_id"]), UUID(request.query["agent_id"])
        async with pool.connection() as conn:
            cur = await conn.execute(CEILING_TALKS, (agent, customer, customer,
                                                     int(request.query["page_size"]) + 1))
            rows = await cur.fetchall()
            names = [c.name for c in cur.description]
        result = [dict(zip(names, r, strict=True)) for r in rows]
        return web.Response(body=orjson.dumps({"result": result, "next_page_token": ""}),
                            content_type="application/json")

    async def readyz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/messages", post)
    app.router.add_get("/messages", list_)
    app.router.add_get("/talks", talks)
    app.router.add_get("/readyz", readyz)
    return app


def serve_ceiling(port: int, url: str, pool_size: int) -> None:
    web.run_app(ceiling_app(url, pool_size), host="127.0.0.1", port=port, access_log=None,
                print=None)


# --- servers as child processes ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A child process serving HTTP on ``base``; its output goes to a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path,
                 port: int, cwd: Path = ROOT) -> None:
        """``cwd``: the tree whose modules ``python -m`` runs (default: this one)."""
        self.name, self.log, self.base = name, log, f"http://127.0.0.1:{port}"
        with log.open("w") as out:
            self.proc = subprocess.Popen([sys.executable, *args], cwd=cwd, env=env,
                                         stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT)

    async def wait_ready(self, session: aiohttp.ClientSession, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: "
                                   f"{self.log.read_text()[-3000:]}")
            try:
                async with session.get(f"{self.base}/readyz") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)  # a child's port: nothing to be notified by
        raise RuntimeError(f"{self.name} not ready after {timeout}s: {self.log.read_text()[-3000:]}")

    def cpu_seconds(self) -> float:
        return proc_cpu(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) a local process has used; 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def talk_env(database_url: str, secret: str, pool: int, log_level: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALK_")}
    env.update(TALK_DATABASE_URL=database_url, TALK_JWT_SECRET=secret,
               TALK_DB_POOL_MAX_SIZE=str(pool), TALK_LOG_LEVEL=log_level,
               PYTHONUNBUFFERED="1")
    return env


# --- databases -----------------------------------------------------------------------------


def db_url(admin_url: str, dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(admin_url, dbname=dbname)


def create_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(admin_url: str, name: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class Backends:
    """CPU of the PostgreSQL server processes serving one (bench-only) database."""

    def __init__(self, url: str) -> None:
        self.url = url

    def pids(self) -> list[int]:
        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                                " AND pid <> pg_backend_pid()").fetchall()
        return [r[0] for r in rows]

    def snapshot(self) -> dict[int, float]:
        return {pid: proc_cpu(pid) for pid in self.pids()}

    def used_since(self, before: dict[int, float]) -> float:
        now = self.snapshot()
        return sum(cpu - before.get(pid, 0.0) for pid, cpu in now.items())


# --- driving requests ----------------------------------------------------------------------


@dataclass
class Cell:
    """One measured window of one system."""

    latencies: list[float]
    seconds: float
    app_cpu: float
    db_cpu: float
    client_cpu: float

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds


@dataclass
class Series:
    cells: list[Cell] = field(default_factory=list)
    drains: list[float] = field(default_factory=list)

    @property
    def latencies(self) -> list[float]:
        return [x for c in self.cells for x in c.latencies]

    @property
    def count(self) -> int:
        return sum(len(c.latencies) for c in self.cells)

    @property
    def rate(self) -> float:
        return self.count / sum(c.seconds for c in self.cells)

    def pct(self, q: float) -> float:
        data = sorted(self.latencies)
        return data[min(len(data) - 1, int(q * len(data)))] * 1000

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.latencies) * 1000

    def per_request_ms(self, attr: str) -> float:
        return sum(getattr(c, attr) for c in self.cells) / self.count * 1000


Request = Callable[[int, int], Awaitable[None]]


async def drive(request: Request, concurrency: int, warmup: float, seconds: float,
                app_pid: int, backends: Backends) -> Cell:
    """Closed loop: ``concurrency`` workers, each sending its next request when the last
    one is answered; latencies of the requests completed inside the measured window."""
    latencies: list[float] = []
    state = {"measuring": False, "stop": False}

    async def worker(i: int) -> None:
        n = 0
        while not state["stop"]:
            t0 = time.perf_counter()
            await request(i, n)
            if state["measuring"]:
                latencies.append(time.perf_counter() - t0)
            n += 1

    tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
    try:
        await _sleep_or_fail(tasks, warmup)
        db0, app0, cli0 = backends.snapshot(), proc_cpu(app_pid), time.process_time()
        t0 = time.perf_counter()
        state["measuring"] = True
        await _sleep_or_fail(tasks, seconds)
        state["measuring"] = False
        elapsed = time.perf_counter() - t0
        cell = Cell(list(latencies), elapsed, proc_cpu(app_pid) - app0,
                    backends.used_since(db0), time.process_time() - cli0)
    finally:
        state["stop"] = True
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return cell


async def _sleep_or_fail(tasks: list[asyncio.Task], seconds: float) -> None:
    done, _ = await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        task.result()
    if done:
        raise RuntimeError("a worker stopped early")


async def expect_ok(resp: aiohttp.ClientResponse) -> bytes:
    body = await resp.read()
    if resp.status != 200:
        raise RuntimeError(f"{resp.method} {resp.url} answered {resp.status}: {body[:500]!r}")
    return body


class TalkClient:
    """Requests to one ``talk up`` as one agent; remembers the highest position answered."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str) -> None:
        self.session, self.base, self.token = session, base, token
        self.headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self.position = 0

    async def post(self, path: str, body: dict) -> dict:
        async with self.session.post(f"{self.base}{path}", data=orjson.dumps(body),
                                     headers=self.headers) as resp:
            data = await expect_ok(resp)
            self.position = max(self.position, int(resp.headers["X-Talk-Position"]))
        return orjson.loads(data)

    async def post_message(self, chat_id: str) -> None:
        """Read, not parsed, as the ceiling's answers are (only the position is kept)."""
        body = orjson.dumps({"chat_id": chat_id, "type": "normal", "text": TEXT})
        async with self.session.post(f"{self.base}{MESSAGES}", data=body,
                                     headers=self.headers) as resp:
            await expect_ok(resp)
            self.position = max(self.position, int(resp.headers["X-Talk-Position"]))

    async def list_talks(self) -> None:
        async with self.session.get(f"{self.base}{CHATS}", params={"page_size": str(PAGE)},
                                    headers=self.headers) as resp:
            await expect_ok(resp)

    async def list_page(self, chat_id: str, token: str = "") -> None:
        params = {"chat_id": chat_id, "page_size": str(PAGE)}
        if token:
            params["page_token"] = token
        async with self.session.get(f"{self.base}{MESSAGES}", params=params,
                                    headers=self.headers) as resp:
            await expect_ok(resp)

    async def new_talk(self) -> str:
        return (await self.post(CHATS, {"type": "group", "name": "bench"}))["id"]

    async def wait_projected(self, chat_id: str, position: int | None = None,
                             timeout: float = 600) -> float:
        """Seconds until the read side has applied ``position`` (default: the last seen)."""
        position = self.position if position is None else position
        start = time.perf_counter()
        headers = {**self.headers, MIN_POSITION: str(position)}
        while True:  # each request waits server-side (up to 2 s) for the projection
            async with self.session.get(f"{self.base}{CHATS}/{chat_id}", headers=headers) as resp:
                body = await resp.read()
                if resp.status == 200:
                    return time.perf_counter() - start
                if resp.status != 503 or time.perf_counter() - start > timeout:
                    raise RuntimeError(f"projection wait answered {resp.status}: {body[:300]!r}")


# --- the parts -----------------------------------------------------------------------------


@dataclass
class Bench:
    args: argparse.Namespace
    session: aiohttp.ClientSession
    main: TalkClient
    talk_pid: int
    backends: Backends
    results: dict[str, Series] = field(default_factory=lambda: defaultdict(Series))
    notes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def progress(self, msg: str) -> None:
        print(f"[{time.perf_counter() - self.started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    async def cell(self, key: str, request: Request, pid: int, backends: Backends,
                   drain: TalkClient | None = None, drain_chat: str = "",
                   paused: int | None = None, posted_by: TalkClient | None = None) -> None:
        """One measured cell. ``paused``: a process stopped (SIGSTOP) for the cell and
        continued after it; ``posted_by``: the client whose last position ``drain`` waits
        for (default: ``drain``'s own)."""
        a = self.args
        if paused is not None:
            os.kill(paused, signal.SIGSTOP)
        try:
            cell = await drive(request, a.concurrency, a.warmup, a.seconds, pid, backends)
        finally:
            if paused is not None:
                os.kill(paused, signal.SIGCONT)
        series = self.results[key]
        series.cells.append(cell)
        extra = ""
        if drain is not None:
            position = (posted_by or drain).position
            waited = await drain.wait_projected(drain_chat, position)
            series.drains.append(waited)
            extra = f", projection caught up {waited:.2f}s later"
        self.progress(f"{key:<28} {cell.rate:8,.0f} req/s  p50 "
                      f"{statistics.median(cell.latencies) * 1000:6.1f} ms{extra}")

    async def rounds(self, cells: list[Callable[[], Awaitable[None]]]) -> None:
        for rnd in range(self.args.rounds):
            k = rnd % len(cells)
            for run in cells[k:] + cells[:k]:
                await run()


async def part_throughput(b: Bench, ceiling: Server, command_api: Server) -> None:
    a = b.args
    talks = [await b.main.new_talk() for _ in range(a.concurrency)]
    listed = talks[0]
    for _ in range(PAGE + 10):  # a full page to list
        await b.main.post_message(listed)
    await b.main.wait_projected(listed)
    base = ceiling.base
    body = [orjson.dumps({"chat_id": t, "type": "normal", "text": TEXT}) for t in talks]
    json_header = {"Content-Type": "application/json"}

    async def talk_post(i: int, n: int) -> None:
        await b.main.post_message(talks[i % len(talks)])

    writer = TalkClient(b.session, command_api.base, b.main.token)

    async def command_api_post(i: int, n: int) -> None:
        await writer.post_message(talks[i % len(talks)])

    async def ceiling_post(i: int, n: int) -> None:
        async with b.session.post(f"{base}/messages", data=body[i % len(body)],
                                  headers=json_header) as resp:
            await expect_ok(resp)

    async def talk_list(i: int, n: int) -> None:
        await b.main.list_page(listed)

    list_params = {"chat_id": listed, "page_size": str(PAGE)}

    async def ceiling_list(i: int, n: int) -> None:
        async with b.session.get(f"{base}/messages", params=list_params) as resp:
            await expect_ok(resp)

    cpid = ceiling.proc.pid
    await b.rounds([
        lambda: b.cell("POST talk", talk_post, b.talk_pid, b.backends, b.main, listed),
        # The command API as deployed on its own, the projector elsewhere: talk up (this
        # run's projector) is stopped for the cell and catches up after it.
        lambda: b.cell("POST command-api", command_api_post, command_api.proc.pid, b.backends,
                       b.main, listed, paused=b.talk_pid, posted_by=writer),
        lambda: b.cell("POST ceiling", ceiling_post, cpid, b.backends),
        lambda: b.cell("GET page talk", talk_list, b.talk_pid, b.backends),
        lambda: b.cell("GET page ceiling", ceiling_list, cpid, b.backends),
    ])


async def full_page_talk(b: Bench) -> str:
    """A new talk holding more than a page of messages, projected."""
    chat = await b.main.new_talk()
    for _ in range(PAGE + 10):
        await b.main.post_message(chat)
    await b.main.wait_projected(chat)
    return chat


async def part_listing(b: Bench, ceiling: Server) -> None:
    listed = await full_page_talk(b)
    params = {"chat_id": listed, "page_size": str(PAGE)}

    async def talk_list(i: int, n: int) -> None:
        await b.main.list_page(listed)

    async def ceiling_list(i: int, n: int) -> None:
        async with b.session.get(f"{ceiling.base}/messages", params=params) as resp:
            await expect_ok(resp)

    await b.rounds([
        lambda: b.cell("GET page talk", talk_list, b.talk_pid, b.backends),
        lambda: b.cell("GET page ceiling", ceiling_list, ceiling.proc.pid, b.backends),
    ])


async def part_talks(b: Bench, ceiling: Server, colleague: tuple[UUID, TalkClient],
                     customer: UUID, agent: UUID, servers: dict[str, Server]) -> None:
    """``colleague``: another agent of the customer and a client calling as it;
    ``servers``: ``talk query-api`` by label (``after``, and ``before`` with --before)."""
    colleague_agent, colleague_client = colleague
    for _ in range(PAGE + 10):
        chat = (await b.main.post(CHATS, {"type": "group", "name": "bench", "participants": [
            {"owner_type": "agent", "owner_id": str(colleague_agent)}]}))["id"]
        for text in (TEXT, f"<@{agent}> {TEXT}"):
            await colleague_client.post(MESSAGES, {"chat_id": chat, "type": "normal",
                                                   "text": text})
    await b.main.wait_projected(chat, max(b.main.position, colleague_client.position))
    b.notes.append(f"talks: the agent is in {PAGE + 10} talks, each with 2 messages of a "
                   "colleague (1 mentioning it); a page of talks has unread 2, mention 1 "
                   "and a newest message on every talk")
    params = {"customer_id": str(customer), "agent_id": str(agent), "page_size": str(PAGE)}

    async def ceiling_list(i: int, n: int) -> None:
        async with b.session.get(f"{ceiling.base}/talks", params=params) as resp:
            await expect_ok(resp)

    cells = [lambda: b.cell("GET talks ceiling", ceiling_list, ceiling.proc.pid, b.backends)]
    for label, server in servers.items():
        reader = TalkClient(b.session, server.base, b.main.token)

        async def get(i: int, n: int, reader: TalkClient = reader) -> None:
            await reader.list_talks()

        cells.append(lambda key=f"GET talks {label}", get=get, pid=server.proc.pid:
                     b.cell(key, get, pid, b.backends))
    await b.rounds(cells)


async def part_loops(b: Bench, servers: dict[tuple[str, str], Server]) -> None:
    """``servers[(kind, loop)]``: ``talk query-api`` / ``talk command-api`` on each loop."""
    listed = await full_page_talk(b)
    talks = [await b.main.new_talk() for _ in range(b.args.concurrency)]
    cells = []
    for loop in LOOPS:
        reader = TalkClient(b.session, servers["query-api", loop].base, b.main.token)
        writer = TalkClient(b.session, servers["command-api", loop].base, b.main.token)

        async def get(i: int, n: int, reader: TalkClient = reader) -> None:
            await reader.list_page(listed)

        async def post(i: int, n: int, writer: TalkClient = writer) -> None:
            await writer.post_message(talks[i % len(talks)])

        qpid, cpid = servers["query-api", loop].proc.pid, servers["command-api", loop].proc.pid
        cells += [
            lambda key=f"GET page query-api {loop}", get=get, qpid=qpid:
                b.cell(key, get, qpid, b.backends),
            lambda key=f"POST command-api {loop}", post=post, cpid=cpid, writer=writer:
                b.cell(key, post, cpid, b.backends, b.main, listed, paused=b.talk_pid,
                       posted_by=writer),
        ]
    await b.rounds(cells)


async def seed_history(b: Bench, url: str, chat_id: str, customer: UUID, agent: UUID,
                       count: int) -> int:
    """``count`` MessagePosted events of ``agent`` in ``chat_id``, appended through the event
    store in batches of ``SEED_BATCH`` new streams; the last position."""
    from events.catalogue import MessagePosted, message_stream
    from events.envelope import Metadata, NewEvent
    from events.postgres_store import PostgresEventStore
    from events.store import StreamAppend
    from services.db import Database, make_pool
    from services.settings import load_settings

    pool = make_pool(load_settings(database_url=url), min_size=1, max_size=1, name="bench-seed")
    await pool.open(wait=True)
    store = PostgresEventStore(Database(pool))
    chat = UUID(chat_id)
    last = 0
    start = datetime.now(UTC) - timedelta(days=30)
    try:
        for batch in range(0, count, SEED_BATCH):
            appends = []
            for i in range(batch, min(count, batch + SEED_BATCH)):
                message_id = uuid4()
                stream = message_stream(message_id)
                event = MessagePosted(message_id=message_id, chat_id=chat, owner_type="agent",
                                      owner_id=agent, type="normal", text=TEXT,
                                      tm_create=start + timedelta(milliseconds=i))
                appends.append(StreamAppend(stream, 0, [NewEvent(stream, event)]))
            result = await store.append(appends, Metadata(customer, "agent", agent,
                                                          request_id=f"bench-seed-{batch}"))
            last = result.last_position
    finally:
        await pool.close()
    return last


async def part_history(b: Bench, customer: UUID, agent: UUID, url: str) -> None:
    a = b.args
    big, fresh = await b.main.new_talk(), await b.main.new_talk()
    t0 = time.perf_counter()
    last = await seed_history(b, url, big, customer, agent, a.history)
    appended = time.perf_counter() - t0
    b.progress(f"appended {a.history:,} MessagePosted events in {appended:.1f}s; projecting")
    projected = await b.main.wait_projected(big, last)
    b.notes.append(f"history seed: {a.history:,} MessagePosted events of one talk appended "
                   f"through PostgresEventStore in {appended:.1f}s ({SEED_BATCH:,} new streams "
                   "per transaction); talk's projector, projecting while they were appended, "
                   f"had applied them all {projected:.1f}s after the last append")
    b.progress(f"projection caught up after {projected:.1f}s")

    async def post_big(i: int, n: int) -> None:
        await b.main.post_message(big)

    async def post_fresh(i: int, n: int) -> None:
        await b.main.post_message(fresh)

    await b.rounds([
        lambda: b.cell(f"POST into {a.history:,}-msg talk", post_big, b.talk_pid, b.backends,
                       b.main, big),
        lambda: b.cell("POST into fresh talk", post_fresh, b.talk_pid, b.backends, b.main, fresh),
    ])


SEED_ROWS = """
INSERT INTO rm_messages (id, customer_id, chat_id, parent_id, owner_type, owner_id, type, text,
                         medias, reactions, tm_create)
SELECT md5(%(salt)s || g::text)::uuid, %(customer)s, %(chat)s, NULL, 'agent', %(agent)s,
       'normal', %(text)s, '[]', '[]', %(base)s + (g / 2) * interval '1 millisecond'
  FROM generate_series(%(lo)s::int, %(hi)s::int) AS g
"""


def seed_rows(url: str, chat_id: str, customer: UUID, agent: UUID, count: int) -> None:
    base = datetime.now(UTC) - timedelta(days=60)
    with psycopg.connect(url, autocommit=True) as conn:
        for lo in range(1, count + 1, 200_000):
            conn.execute(SEED_ROWS, {"salt": chat_id, "customer": customer, "chat": UUID(chat_id),
                                     "agent": agent, "text": TEXT, "base": base, "lo": lo,
                                     "hi": min(count, lo + 199_999)})
        conn.execute("ANALYZE")


def depth_tokens(url: str, chat_id: str, count: int) -> list[str]:
    """The first page ("") and ``next_page_token``s that start pages at each of DEPTHS."""
    from query_api.pagination import encode_token

    tokens = []
    with psycopg.connect(url, autocommit=True) as conn:
        for depth in DEPTHS:
            offset = int(depth * count)
            if offset == 0:
                tokens.append("")
                continue
            tm_create, item = conn.execute(
                "SELECT tm_create, id FROM rm_messages WHERE chat_id = %s"
                " ORDER BY tm_create DESC, id DESC OFFSET %s LIMIT 1",
                (UUID(chat_id), offset - 1)).fetchone()
            tokens.append(encode_token(tm_create, item))
    return tokens


async def part_table(b: Bench, clients: tuple[TalkClient, TalkClient], pids: tuple[int, int],
                     backends: tuple[Backends, Backends], customer: UUID, agent: UUID,
                     urls: tuple[str, str]) -> None:
    a = b.args
    large, small = clients
    large_chat, small_chat = await large.new_talk(), await small.new_talk()
    await large.wait_projected(large_chat)
    await small.wait_projected(small_chat)
    t0 = time.perf_counter()
    await asyncio.to_thread(seed_rows, urls[0], large_chat, customer, agent, a.large)
    await asyncio.to_thread(seed_rows, urls[1], small_chat, customer, agent, a.small)
    large_tokens = await asyncio.to_thread(depth_tokens, urls[0], large_chat, a.large)
    small_tokens = await asyncio.to_thread(depth_tokens, urls[1], small_chat, a.small)
    b.progress(f"seeded rm_messages ({a.large:,} and {a.small:,} rows) in "
               f"{time.perf_counter() - t0:.1f}s")
    b.notes.append(f"read tables: {a.large:,} rows (all of one talk) in one database and "
                   f"{a.small:,} (one talk) in another, each behind a fresh talk up; pages "
                   f"requested in turn at depths {', '.join(f'{d:.0%}' for d in DEPTHS)}")

    def lister(client: TalkClient, chat: str, tokens: list[str], key: str) -> Request:
        async def request(i: int, n: int) -> None:
            d = (i + n) % len(tokens)
            t0 = time.perf_counter()
            await client.list_page(chat, tokens[d])
            b.results[f"{key} @{DEPTHS[d]:.0%}"].cells.append(
                Cell([time.perf_counter() - t0], 0.0, 0.0, 0.0, 0.0))

        return request

    await b.rounds([
        lambda: b.cell(f"GET page, {a.large:,} rows",
                       lister(large, large_chat, large_tokens, "large"), pids[0], backends[0]),
        lambda: b.cell(f"GET page, {a.small:,} rows",
                       lister(small, small_chat, small_tokens, "small"), pids[1], backends[1]),
    ])


# --- the report ----------------------------------------------------------------------------


def row(name: str, s: Series) -> str:
    return (f"| {name} | {s.rate:,.0f} | {s.pct(0.5):.1f} | {s.pct(0.99):.1f} | "
            f"{s.per_request_ms('app_cpu'):.2f} | {s.per_request_ms('db_cpu'):.2f} | "
            f"{s.per_request_ms('client_cpu'):.2f} |")


HEADER = ("| system | req/s | p50 ms | p99 ms | server CPU ms/req | Postgres CPU ms/req | "
          "client CPU ms/req |\n|---|---:|---:|---:|---:|---:|---:|")


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def report(b: Bench) -> str:
    a, r = b.args, b.results
    out = []
    if "POST talk" in r:
        post_ratio = r["POST talk"].rate / r["POST ceiling"].rate
        alone_ratio = r["POST command-api"].rate / r["POST ceiling"].rate
        out += ["### throughput", HEADER,
                row("POST /v1.0/service_agents/talk_messages (talk up)", r["POST talk"]),
                row("POST the same (talk command-api alone, talk up paused)",
                    r["POST command-api"]),
                row("POST ceiling (one INSERT, autocommit)", r["POST ceiling"]),
                row(f"GET talk_messages?chat_id=&page_size={PAGE} (talk up)", r["GET page talk"]),
                row(f"GET ceiling (one SELECT ... LIMIT {PAGE + 1})", r["GET page ceiling"]), "",
                f"posting / ceiling = {post_ratio:.2f} (target >= {TARGET_POST_RATIO:.2f}: "
                f"{verdict(post_ratio >= TARGET_POST_RATIO)}); the command API alone / ceiling "
                f"= {alone_ratio:.2f} ({verdict(alone_ratio >= TARGET_POST_RATIO)}), its posts "
                f"projected {statistics.fmean(r['POST command-api'].drains):.2f}s (mean) after "
                f"the cell by talk up's projector; listing / ceiling = "
                f"{r['GET page talk'].rate / r['GET page ceiling'].rate:.2f}; projection caught "
                f"up {statistics.fmean(r['POST talk'].drains):.2f}s (mean) after each posting "
                "cell", ""]
    if "GET page talk" in r and "POST talk" not in r:
        page_cpu = r["GET page talk"].per_request_ms("app_cpu")
        out += ["### listing", HEADER,
                row(f"GET talk_messages?chat_id=&page_size={PAGE} (talk up)", r["GET page talk"]),
                row(f"GET ceiling (one SELECT ... LIMIT {PAGE + 1})", r["GET page ceiling"]), "",
                f"server CPU per page {page_cpu:.2f} ms (target <= {TARGET_PAGE_CPU_MS}: "
                f"{verdict(page_cpu <= TARGET_PAGE_CPU_MS)}), "
                f"{page_cpu / r['GET page ceiling'].per_request_ms('app_cpu'):.1f}x the "
                f"ceiling's; listing / ceiling rate = "
                f"{r['GET page talk'].rate / r['GET page ceiling'].rate:.2f}", ""]
    if f"GET page query-api {LOOPS[0]}" in r:
        out += ["### event loop (TALK_EVENT_LOOP)", HEADER]
        for kind in ("GET page query-api", "POST command-api"):
            out += [row(f"{kind} {loop}", r[f"{kind} {loop}"]) for loop in LOOPS]
        for kind in ("GET page query-api", "POST command-api"):
            base, other = r[f"{kind} {LOOPS[0]}"], r[f"{kind} {LOOPS[1]}"]
            out.append(f"- {kind}: {LOOPS[1]} / {LOOPS[0]} rate {other.rate / base.rate:.2f}, "
                       f"server CPU per request {other.per_request_ms('app_cpu'):.2f} vs "
                       f"{base.per_request_ms('app_cpu'):.2f} ms")
        out.append("")
    if "GET talks after" in r:
        out += ["### a page of talks", HEADER]
        ceiling_cpu = r["GET talks ceiling"].per_request_ms("app_cpu")
        labels = ["before", "after"] if "GET talks before" in r else ["after"]
        names = {"before": f"talk query-api at {a.before}", "after": "talk query-api (this tree)"}
        out += [row(f"GET talk_chats?page_size={PAGE}, {names[k]}", r[f"GET talks {k}"])
                for k in labels]
        out += [row(f"GET ceiling (one SELECT of the talks ... LIMIT {PAGE + 1})",
                    r["GET talks ceiling"]), ""]
        for k in labels:
            cpu = r[f"GET talks {k}"].per_request_ms("app_cpu")
            out.append(f"- {names[k]}: server CPU per page {cpu:.2f} ms (target <= "
                       f"{TARGET_PAGE_CPU_MS}: {verdict(cpu <= TARGET_PAGE_CPU_MS)}), "
                       f"{cpu / ceiling_cpu:.1f}x the ceiling's; rate / ceiling "
                       f"{r[f'GET talks {k}'].rate / r['GET talks ceiling'].rate:.2f}")
        if len(labels) == 2:
            before, after = (r[f"GET talks {k}"].per_request_ms("app_cpu") for k in labels)
            out.append(f"- after / before: server CPU per page {after / before:.2f}")
        out.append("")
    big_key = f"POST into {a.history:,}-msg talk"
    if big_key in r:
        big, fresh = r[big_key], r["POST into fresh talk"]
        ratio = big.mean_ms / fresh.mean_ms
        out += ["### history", HEADER, row(big_key, big), row("POST into fresh talk", fresh), "",
                f"history ratio (mean latency {a.history:,} / fresh) = {ratio:.2f}, p50 "
                f"{big.pct(0.5) / fresh.pct(0.5):.2f}, p99 {big.pct(0.99) / fresh.pct(0.99):.2f}"
                f" (target <= {TARGET_HISTORY_RATIO}: {verdict(ratio <= TARGET_HISTORY_RATIO)})",
                ""]
    large_key, small_key = f"GET page, {a.large:,} rows", f"GET page, {a.small:,} rows"
    if large_key in r:
        large, small = r[large_key], r[small_key]
        ratio = large.pct(0.99) / small.pct(0.99)
        out += ["### read table", HEADER, row(large_key, large), row(small_key, small), "",
                f"p99 ratio ({a.large:,} / {a.small:,}) = {ratio:.2f} (target <= "
                f"{TARGET_TABLE_P99_RATIO}: {verdict(ratio <= TARGET_TABLE_P99_RATIO)}); p50 "
                f"ratio {large.pct(0.5) / small.pct(0.5):.2f}", "",
                "| depth | " + " | ".join(f"{d:.0%}" for d in DEPTHS) + " |",
                "|---|" + "---:|" * len(DEPTHS)]
        for key, label in (("large", f"{a.large:,} rows p50 ms"),
                           ("small", f"{a.small:,} rows p50 ms")):
            cells = [r.get(f"{key} @{d:.0%}") for d in DEPTHS]
            out.append(f"| {label} | " + " | ".join(f"{c.pct(0.5):.1f}" if c else "-"
                                                    for c in cells) + " |")
        out.append("")
    out += [f"- {n}" for n in b.notes]
    return "\n".join(out)


# --- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__.split("\n")[0])
    p.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    p.add_argument("--seconds", type=float, default=5.0, help="measured time per cell")
    p.add_argument("--warmup", type=float, default=1.0, help="unmeasured time before each cell")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--history", type=int, default=100_000, help="messages of the old talk")
    p.add_argument("--large", type=int, default=1_000_000, help="rows of the large read table")
    p.add_argument("--small", type=int, default=10_000, help="rows of the small read table")
    p.add_argument("--parts", default="throughput,history,table")
    p.add_argument("--before", metavar="REV",
                   help="talks: also list through talk query-api run from this git revision")
    p.add_argument("--pool", type=int, default=10,
                   help="Postgres pool size of talk up (TALK_DB_POOL_MAX_SIZE) and the ceiling")
    p.add_argument("--log-level", default="INFO", help="TALK_LOG_LEVEL of talk up")
    p.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--keep", action="store_true", help="keep the databases")
    p.add_argument("--serve-ceiling", nargs=3, metavar=("PORT", "DATABASE_URL", "POOL"),
                   help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    for part in args.parts:
        if part not in ("throughput", "history", "table", "listing", "loops", "talks"):
            p.error(f"unknown part {part!r}")
    if min(args.concurrency, args.rounds, args.history, args.small, args.large) < 1:
        p.error("counts must be positive")
    if args.small < PAGE * 2 or args.large < PAGE * 2:
        p.error(f"the read tables need at least {PAGE * 2} rows")
    return args


class Setup:
    """The run's databases, secret, caller, log folder and servers."""

    def __init__(self, args: argparse.Namespace) -> None:
        from services.auth import mint_token

        self.args = args
        prefix = f"talk_bench_api_{os.getpid()}"
        self.names = {"main": prefix, "large": f"{prefix}_large", "small": f"{prefix}_small"}
        self.urls = {k: db_url(args.admin_url, n) for k, n in self.names.items()}
        self.secret = secrets.token_hex(32)
        self.customer, self.agent = uuid4(), uuid4()
        self.token = mint_token(self.secret, self.customer, self.agent, ttl=24 * 3600)
        self.logs = Path(tempfile.mkdtemp(prefix="bench_api_"))
        self.servers: list[Server] = []

    def talk_up(self, db: str) -> Server:
        port = free_port()
        server = Server(f"talk up ({db})", ["-m", "services.cli", "up", "--host", "127.0.0.1",
                                             "--port", str(port), "--data-dir", str(self.logs)],
                        talk_env(self.urls[db], self.secret, self.args.pool, self.args.log_level),
                        self.logs / f"talk-{db}.log", port)
        self.servers.append(server)
        return server

    def command_api(self, db: str, loop: str = "asyncio") -> Server:
        return self.service("command-api", db, loop)

    def service(self, kind: str, db: str, loop: str, tree: Path = ROOT,
                label: str = "") -> Server:
        """``talk command-api`` or ``talk query-api`` on the event loop ``loop``, run from
        ``tree`` (default: this one)."""
        port = free_port()
        env = talk_env(self.urls[db], self.secret, self.args.pool, self.args.log_level)
        env.update(TALK_HOST="127.0.0.1", TALK_EVENT_LOOP=loop,
                   **{f"TALK_{kind.replace('-', '_').upper()}_PORT": str(port)})
        name = f"{kind}-{db}-{loop}{'-' + label if label else ''}"
        server = Server(f"talk {kind} ({db}, {loop}{', ' + label if label else ''})",
                        ["-m", "services.cli", kind], env, self.logs / f"{name}.log", port,
                        cwd=tree)
        self.servers.append(server)
        return server

    def tree_of(self, rev: str) -> Path:
        """This repository's files at git revision ``rev``, in a folder of the run's logs."""
        tree = self.logs / f"tree-{rev}"
        tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", rev],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
        return tree

    def ceiling(self) -> Server:
        port = free_port()
        server = Server("ceiling", ["-m", "bench.api", "--serve-ceiling", str(port),
                                    self.urls["main"], str(self.args.pool)], dict(os.environ),
                        self.logs / "ceiling.log", port)
        self.servers.append(server)
        return server

    def stop(self, *servers: Server) -> None:
        for server in servers or list(self.servers):
            server.stop()
            self.servers.remove(server)


async def run(args: argparse.Namespace) -> str:
    from services.auth import mint_token

    setup = Setup(args)
    started = time.perf_counter()
    for name in setup.names.values():
        create_database(args.admin_url, name)
    try:
        connector = aiohttp.TCPConnector(limit=args.concurrency + 4)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            talk, ceiling = setup.talk_up("main"), setup.ceiling()
            command_api = setup.command_api("main")
            for server in (talk, ceiling, command_api):
                await server.wait_ready(session)
            b = Bench(args, session, TalkClient(session, talk.base, setup.token), talk.proc.pid,
                      Backends(setup.urls["main"]), started=started)
            b.progress(f"servers ready (logs in {setup.logs})")
            if "throughput" in args.parts:
                await part_throughput(b, ceiling, command_api)
            if "history" in args.parts:
                await part_history(b, setup.customer, setup.agent, setup.urls["main"])
            if "listing" in args.parts:
                await part_listing(b, ceiling)
            if "talks" in args.parts:
                readers = {"after": setup.service("query-api", "main", "uvloop", label="after")}
                if args.before:
                    readers["before"] = setup.service("query-api", "main", "uvloop",
                                                      setup.tree_of(args.before),
                                                      label=f"before {args.before}")
                for server in readers.values():
                    await server.wait_ready(session)
                colleague = uuid4()
                colleague_client = TalkClient(session, talk.base, mint_token(
                    setup.secret, setup.customer, colleague, ttl=24 * 3600))
                await part_talks(b, ceiling, (colleague, colleague_client), setup.customer,
                                 setup.agent, readers)
                setup.stop(*readers.values())
            if "loops" in args.parts:
                servers = {(kind, loop): setup.service(kind, "main", loop)
                           for kind in ("query-api", "command-api") for loop in LOOPS}
                for server in servers.values():
                    await server.wait_ready(session)
                await part_loops(b, servers)
                setup.stop(*servers.values())
            setup.stop(talk, ceiling, command_api)  # the read tables get fresh processes
            if "table" in args.parts:
                large, small = setup.talk_up("large"), setup.talk_up("small")
                for server in (large, small):
                    await server.wait_ready(session)
                await part_table(b, (TalkClient(session, large.base, setup.token),
                                     TalkClient(session, small.base, setup.token)),
                                 (large.proc.pid, small.proc.pid),
                                 (Backends(setup.urls["large"]), Backends(setup.urls["small"])),
                                 setup.customer, setup.agent,
                                 (setup.urls["large"], setup.urls["small"]))
            wall = time.perf_counter() - started
        with psycopg.connect(args.admin_url) as conn:
            server = conn.execute("SHOW server_version").fetchone()[0]
        head = (f"bench.api: concurrency {args.concurrency}, {args.rounds} rounds x "
                f"{args.seconds:g}s per cell (+{args.warmup:g}s warm-up), systems interleaved "
                f"in rotating order; pool {args.pool}; talk up log level {args.log_level}; "
                f"PostgreSQL {server}; os.cpu_count()={os.cpu_count()}; wall {wall:.0f}s")
        return head + "\n\n" + report(b)
    finally:
        setup.stop()
        if not args.keep:
            for name in setup.names.values():
                drop_database(args.admin_url, name)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.serve_ceiling:
        port, url, pool = args.serve_ceiling
        serve_ceiling(int(port), url, int(pool))
        return
    # As in production (INFO): the store's per-statement debug lines are dropped.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    print(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
