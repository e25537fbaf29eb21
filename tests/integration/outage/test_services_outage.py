"""The command API, query API and projector as separate processes on a throw-away Postgres
that restarts (``pg_ctl restart -m fast``) and dies (``pg_ctl stop -m immediate``, then
started again), under a steady load of writes and reads:

- never a 500: every answer is 200, or 503 ``application/problem+json`` with ``Retry-After``
  (and while the server is down, 503 is what both APIs answer);
- once ``/readyz`` of both APIs is 200 again, not one request fails;
- a restart while the APIs are idle leaves every pooled connection dead: not one is handed
  out, so even the first requests after the server is back all succeed;
- the projector recovers by itself: the last write is readable at its position;
- no line is logged at error level (an expected outage is a warning, without traceback).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from uuid import uuid4

import aiohttp
import orjson

from tests.e2e.processes import TalkProcess, clean_env, free_port, talk_processes
from tests.integration.outage.cluster import ThrowawayCluster
from tests.support import TEST_SECRET, bearer, wait_until

CHATS = "/v1.0/service_agents/talk_chats"
SERVICES = {"command-api": "command_api_port", "query-api": "query_api_port",
            "projector": "projector_port"}
APIS = ("command-api", "query-api")
WORKERS = 2  # per API
PACE = 0.02  # seconds between two requests of one worker: a steady, modest load
SUCCESSES_PER_PHASE = 10  # of each API, once ready again, before the next step
POOL_MIN_SIZE = 4  # idle connections each API holds, all of them killed by a restart


@dataclass(frozen=True)
class Answer:
    api: str
    started: float
    finished: float
    status: int  # 0: no HTTP answer at all
    content_type: str = ""
    retry_after: str | None = None
    detail: str = ""


@dataclass
class Load:
    """Writes to the command API and reads from the query API until stopped."""

    session: aiohttp.ClientSession
    bases: dict[str, str]
    headers: dict[str, str]
    answers: list[Answer] = field(default_factory=list)
    last_write: tuple[str, str] | None = None  # (chat id, position) of the last 200
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    running: asyncio.Event = field(default_factory=asyncio.Event)
    in_flight: int = 0

    async def pause(self) -> None:
        """Stop sending, and wait for the requests in flight to be answered."""
        self.running.clear()
        await wait_until(lambda: _true(self.in_flight == 0), what="the load to pause")

    async def _request(self, api: str, method: str, path: str, **kwargs) -> None:
        await self.running.wait()
        if self.stop.is_set():
            return
        self.in_flight += 1
        started = time.monotonic()
        try:
            async with self.session.request(method, self.bases[api] + path,
                                            headers=self.headers | kwargs.pop("headers", {}),
                                            **kwargs) as resp:
                body = await resp.read()
                answer = Answer(api, started, time.monotonic(), resp.status, resp.content_type,
                                resp.headers.get("Retry-After"),
                                body.decode(errors="replace")[:300] if resp.status != 200 else "")
                if api == "command-api" and resp.status == 200:
                    self.last_write = (orjson.loads(body)["id"], resp.headers["X-Talk-Position"])
        except (aiohttp.ClientError, TimeoutError) as exc:
            answer = Answer(api, started, time.monotonic(), 0, detail=repr(exc))
        finally:
            self.in_flight -= 1
        self.answers.append(answer)

    async def _writer(self) -> None:
        while not self.stop.is_set():
            await self._request("command-api", "POST", CHATS,
                                json={"type": "group", "name": f"load {uuid4().hex[:8]}"},
                                headers={"Idempotency-Key": uuid4().hex})
            await asyncio.sleep(PACE)

    async def _reader(self) -> None:
        while not self.stop.is_set():
            await self._request("query-api", "GET", f"{CHATS}?page_size=5")
            await asyncio.sleep(PACE)

    def start(self) -> list[asyncio.Task]:
        self.running.set()
        return [asyncio.create_task(work()) for work in
                [self._writer] * WORKERS + [self._reader] * WORKERS]

    def since(self, moment: float, until: float | None = None) -> list[Answer]:
        """Answers to requests started at ``moment`` or later (and finished before ``until``)."""
        return [a for a in self.answers
                if a.started >= moment and (until is None or a.finished < until)]

    def succeeded_since(self, moment: float) -> bool:
        mine = self.since(moment)
        return all(sum(1 for a in mine if a.api == api and a.status == 200)
                   >= SUCCESSES_PER_PHASE for api in APIS)

    def unavailable_since(self, moment: float) -> bool:
        mine = self.since(moment)
        return all(any(a.api == api and a.status == 503 for a in mine) for api in APIS)


async def _ready(session: aiohttp.ClientSession, base: str) -> bool:
    try:
        async with session.get(f"{base}/readyz") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


async def _all_ready(session: aiohttp.ClientSession, bases: dict[str, str],
                     names=tuple(SERVICES)) -> float:
    """Wait until every named service's /readyz answers 200; the moment it was seen."""
    for name in names:
        await wait_until(lambda name=name: _ready(session, bases[name]), timeout=30,
                         interval=0.05, what=f"{name} /readyz to answer 200")
    return time.monotonic()


def _describe(answers: list[Answer]) -> str:
    return "\n".join(f"{a.api} {a.status} {a.detail}" for a in answers[:10])


async def test_apis_answer_503_during_an_outage_and_nothing_fails_once_ready(
        tmp_path: Path, cluster: ThrowawayCluster) -> None:
    ports = {name: free_port() for name in SERVICES}
    bases = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    env = clean_env(database_url=cluster.url("talk"), jwt_secret=TEST_SECRET, host="127.0.0.1",
                    db_connect_timeout="2", projector_poll_interval="0.2", log_level="WARNING",
                    db_pool_min_size=str(POOL_MIN_SIZE),
                    **{SERVICES[name]: str(port) for name, port in ports.items()})
    timeout = aiohttp.ClientTimeout(total=20)
    async with talk_processes() as running, aiohttp.ClientSession(timeout=timeout) as session:
        procs = {}
        for name in SERVICES:
            procs[name] = await TalkProcess.start(name, env=env, cwd=tmp_path)
            running.append(procs[name])
        await _all_ready(session, bases)

        load = Load(session, bases, bearer(uuid4(), uuid4()))
        workers = load.start()
        try:
            begin = time.monotonic()
            await wait_until(lambda: _true(load.succeeded_since(begin)), timeout=30,
                             what="the load to run")

            # 1. A fast restart: back at once; nothing fails once ready again.
            await asyncio.to_thread(cluster.restart_fast)
            ready_after_restart = await _all_ready(session, bases, APIS)
            await wait_until(lambda: _true(load.succeeded_since(ready_after_restart)),
                             timeout=30, what="requests to succeed after the restart")

            # 2. A restart while the APIs are idle: their pools hold only dead connections,
            # and not one is handed out (nothing asked the pools while the server was away,
            # so they connect again at once).
            await load.pause()
            await asyncio.to_thread(cluster.restart_fast)  # returns once it accepts again
            back = time.monotonic()
            load.running.set()
            await wait_until(lambda: _true(load.succeeded_since(back)), timeout=30,
                             what="requests to succeed after the idle restart")

            # 3. A hard stop: both APIs answer 503 while the server is down.
            stopped = time.monotonic()
            await asyncio.to_thread(cluster.stop_immediate)
            await wait_until(lambda: _true(load.unavailable_since(stopped)), timeout=30,
                             what="both APIs to answer 503 while Postgres is down")
            await asyncio.to_thread(cluster.start)
            ready_after_stop = await _all_ready(session, bases, APIS)
            await wait_until(lambda: _true(load.succeeded_since(ready_after_stop)),
                             timeout=30, what="requests to succeed after the hard stop")
        finally:
            load.stop.set()
            load.running.set()
            await asyncio.gather(*workers)

        # The projector recovered by itself: the last write is readable at its position.
        await _all_ready(session, bases)
        assert load.last_write is not None
        chat_id, position = load.last_write
        async with session.get(f"{bases['query-api']}{CHATS}/{chat_id}",
                               headers=load.headers | {"X-Talk-Min-Position": position}) as resp:
            assert resp.status == 200, await resp.text()

        for proc in procs.values():
            await proc.stop()

    answers = load.answers
    unexpected = [a for a in answers if a.status not in (200, 503)]
    assert not unexpected, f"answers neither 200 nor 503:\n{_describe(unexpected)}"
    unavailable = [a for a in answers if a.status == 503]
    assert unavailable, "no request met the outage"
    bad_503 = [a for a in unavailable
               if a.content_type != "application/problem+json"
               or not (a.retry_after or "").isdigit()]
    assert not bad_503, f"503s without problem+json and Retry-After:\n{_describe(bad_503)}"
    after_ready = (load.since(ready_after_restart, until=stopped)
                   + load.since(ready_after_stop))  # (the idle restart's are in there)
    failed = [a for a in after_ready if a.status != 200]
    assert not failed, f"{len(failed)} of {len(after_ready)} requests failed once /readyz " \
                       f"was 200 again:\n{_describe(failed)}"

    for name, proc in procs.items():
        errors = [line for line in proc.stderr if '"level":"error"' in line.replace(" ", "")
                  or "Traceback" in line]
        assert not errors, f"{name} logged errors for an expected outage:\n" + \
            "\n".join(errors[:5])


async def _true(value: bool) -> bool:
    return value
