"""Two ``talk command-api`` processes behind one port (a round-robin TCP proxy, as a load
balancer would put them), one database: the concurrency rules hold across processes.

Every request opens a new connection, so consecutive requests alternate between the two
processes; each request carries its own ``X-Request-ID`` and is attributed to the process
whose request log names it. Racing through the one port:

- many adds of one participant: exactly one 200, the rest 409 ``already-participant``;
- posts racing with the poster's removal: each lands before the removal or is refused 403,
  and no post by a non-participant is stored;
- edits of one message (the API has no ``If-Match``: the last edit wins, each one on the
  version it read, re-decided on a conflict): every edit answered 200 is one stored version,
  none lost or doubled;
- one ``Idempotency-Key`` sent to both processes at once: one effect, identical replays.

The event store (the ``events`` table) is then checked for doubles, and each process's
``/metrics`` request counters for the share it served."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import aiohttp
import orjson
import psycopg
from psycopg.rows import dict_row

from services.auth import mint_token
from tests.e2e.processes import TalkProcess, clean_env, free_port, talk_processes
from tests.integration.publishing.proxy import TcpProxy
from tests.support import TEST_SECRET, wait_until

V = "/v1.0"
CHATS = f"{V}/service_agents/talk_chats"
MESSAGES = f"{V}/service_agents/talk_messages"
PROBLEMS = "https://talk.dev/problems/"
PROBLEM_JSON = "application/problem+json"

ADD_ROUNDS, ADDERS = 3, 12  # talks, and concurrent adds of one agent into each
REMOVAL_ROUNDS, RACING_POSTS = 4, 8
EDITS = 12
KEYS, SENDS_PER_KEY = 3, 8


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]
    request_id: str

    def json(self) -> Any:
        return orjson.loads(self.body)

    @property
    def problem_type(self) -> str | None:
        if self.content_type != PROBLEM_JSON:
            return None
        return self.json()["type"].removeprefix(PROBLEMS)


@dataclass
class Port:
    """The proxy's one port, and every request sent through it (by request id)."""

    session: aiohttp.ClientSession
    base: str
    sent: dict[str, str] = field(default_factory=dict)  # request id -> scenario

    def agent(self, customer_id: UUID) -> Agent:
        agent_id = uuid4()
        token = mint_token(TEST_SECRET, customer_id, agent_id, 3600)
        return Agent(self, customer_id, agent_id, {"Authorization": f"Bearer {token}"})


@dataclass
class Agent:
    port: Port
    customer_id: UUID
    agent_id: UUID
    headers: dict[str, str]

    @property
    def id(self) -> str:
        return str(self.agent_id)

    def colleague(self) -> Agent:
        return self.port.agent(self.customer_id)

    async def call(self, scenario: str, method: str, path: str, body: Any,
                   headers: dict[str, str] | None = None) -> Answer:
        request_id = f"{scenario}-{uuid4().hex}"
        self.port.sent[request_id] = scenario
        async with self.port.session.request(
                method, self.port.base + path, json=body,
                headers={**self.headers, "X-Request-ID": request_id, **(headers or {})}) as resp:
            return Answer(resp.status, resp.content_type, await resp.read(), dict(resp.headers),
                          request_id)

    async def ok(self, scenario: str, method: str, path: str, body: Any) -> dict:
        answer = await self.call(scenario, method, path, body)
        assert answer.status == 200, (method, path, answer.status, answer.body)
        return answer.json()


async def _events(database_url: str) -> list[dict]:
    """Every stored event in the store's one global order."""
    async with await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row) as conn:
        cur = await conn.execute(
            "SELECT event_id, stream_id, version, type, data FROM events"
            " ORDER BY tx_id, position")
        return await cur.fetchall()


def _of_talk(events: list[dict], chat_id: str) -> list[dict]:
    return [e for e in events if e["data"].get("chat_id") == chat_id]


# --- the races ---------------------------------------------------------------------------------

async def _adds_of_one_participant(alice: Agent, bob: Agent, figures: Counter) -> list[tuple]:
    """Alice and Bob add Carol to their talk, twelve times at once: one join."""
    talks = []
    for _ in range(ADD_ROUNDS):
        carol = alice.colleague()
        chat = await alice.ok("add", "POST", CHATS, {
            "type": "group", "participants": [{"owner_type": "agent", "owner_id": bob.id}]})
        body = {"owner_type": "agent", "owner_id": carol.id}
        answers = await asyncio.gather(*(
            adder.call("add", "POST", f"{CHATS}/{chat['id']}/participants", body)
            for adder in (alice, bob) * (ADDERS // 2)))
        statuses = Counter(a.status for a in answers)
        figures.update({f"add {s}": n for s, n in statuses.items()})
        assert statuses == {200: 1, 409: ADDERS - 1}, [(a.status, a.body) for a in answers]
        refusals = {a.problem_type for a in answers if a.status == 409}
        assert refusals == {"already-participant"}, refusals
        joined = next(a.json() for a in answers if a.status == 200)
        assert joined["owner_id"] == carol.id
        talks.append((chat["id"], carol.id))
    return talks


def _check_adds(events: list[dict], talks: list[tuple]) -> None:
    for chat_id, carol_id in talks:
        history = _of_talk(events, chat_id)
        assert Counter(e["type"] for e in history) == {
            "ChatCreated": 1, "ParticipantJoined": 3, "MessagePosted": 2}, history
        assert [e["data"]["owner_id"] for e in history
                if e["type"] == "ParticipantJoined"].count(carol_id) == 1


async def _posts_racing_a_removal(alice: Agent, bob: Agent, figures: Counter) -> tuple[set, set]:
    """Bob posts eight times while Alice removes him: 200 before the removal, 403 after."""
    chats, accepted = set(), set()
    for _ in range(REMOVAL_ROUNDS):
        chat = await alice.ok("removal", "POST", CHATS, {"type": "group"})
        joined = await alice.ok("removal", "POST", f"{CHATS}/{chat['id']}/participants",
                                {"owner_type": "agent", "owner_id": bob.id})
        posts = [bob.call("removal", "POST", MESSAGES, {"chat_id": chat["id"], "text": f"race {i}"})
                 for i in range(RACING_POSTS)]
        removal = alice.call("removal", "DELETE",
                             f"{CHATS}/{chat['id']}/participants/{joined['id']}", None)
        half = RACING_POSTS // 2  # the removal sent among the posts
        everything = await asyncio.gather(*posts[:half], removal, *posts[half:])
        removed = everything.pop(half)
        answers = everything
        assert removed.status == 200, removed.body
        for answer in answers:
            figures[f"post {answer.status}"] += 1
            assert answer.status in (200, 403), (answer.status, answer.body)
            if answer.status == 403:
                assert answer.problem_type == "not-a-participant", answer.body
            else:
                accepted.add(answer.json()["id"])
        chats.add(chat["id"])
    return chats, accepted


def _check_removals(events: list[dict], chats: set[str], accepted: set[str], bob: Agent) -> None:
    stored = set()
    for chat_id in chats:
        members: set[str] = set()
        for e in _of_talk(events, chat_id):
            data = e["data"]
            if e["type"] == "ParticipantJoined":
                members.add(data["owner_id"])
            elif e["type"] == "ParticipantLeft":
                members.discard(data["owner_id"])
            elif e["type"] == "MessagePosted" and data["owner_type"] == "agent":
                assert data["owner_id"] in members, f"a post by a non-participant: {e}"
                if data["owner_id"] == bob.id:
                    stored.add(data["message_id"])
    assert stored == accepted  # every 200 is stored once, no 403 left anything behind


async def _edits_of_one_message(alice: Agent, figures: Counter) -> tuple[str, dict[str, str]]:
    """Twelve edits of one message at once: each one answered 200 is one stored version."""
    chat = await alice.ok("edit", "POST", CHATS, {"type": "group"})
    message = await alice.ok("edit", "POST", MESSAGES, {"chat_id": chat["id"], "text": "v0"})
    answers = await asyncio.gather(*(
        alice.call("edit", "PUT", f"{MESSAGES}/{message['id']}", {"text": f"v{i + 1}"})
        for i in range(EDITS)))
    edited = {}
    for i, answer in enumerate(answers):
        figures[f"edit {answer.status}"] += 1
        if answer.status == 409:  # a command that lost every retry refuses, and stores nothing
            assert answer.problem_type == "concurrent-change", answer.body
            continue
        assert answer.status == 200, (answer.status, answer.body)
        assert answer.json()["text"] == f"v{i + 1}"
        edited[f"v{i + 1}"] = answer.headers["X-Talk-Position"]
    assert len(set(edited.values())) == len(edited)  # each edit its own event
    return message["id"], edited


def _check_edits(events: list[dict], message_id: str, edited: dict[str, str]) -> None:
    stream = [e for e in events if e["stream_id"] == f"message-{message_id}"]
    assert [e["version"] for e in stream] == list(range(1, len(stream) + 1))
    texts = [e["data"]["text"] for e in stream if e["type"] == "MessageEdited"]
    assert sorted(texts) == sorted(edited)  # no 200 lost, none stored twice


async def _one_key_at_both(alice: Agent, figures: Counter) -> tuple[str, list[str]]:
    """Each key sent eight times at once (four to each process): one post, one answer."""
    chat = await alice.ok("idempotency", "POST", CHATS, {"type": "group"})
    texts = []
    for k in range(KEYS):
        key = f"two-apis-{uuid4()}"
        body = {"chat_id": chat["id"], "text": f"once {k}"}
        answers = await asyncio.gather(*(
            alice.call(f"key{k}", "POST", MESSAGES, body, {"Idempotency-Key": key})
            for _ in range(SENDS_PER_KEY)))
        figures.update(f"key {a.status}" for a in answers)
        assert [a.status for a in answers] == [200] * SENDS_PER_KEY, [a.body for a in answers]
        assert len({a.body for a in answers}) == 1, "replays differ from the first answer"
        assert len({a.headers["X-Talk-Position"] for a in answers}) == 1
        replayed = [a.headers.get("Idempotent-Replayed") for a in answers]
        assert replayed.count("true") == SENDS_PER_KEY - 1, replayed
        texts.append(body["text"])
    return chat["id"], texts


def _check_keys(events: list[dict], chat_id: str, texts: list[str]) -> None:
    posted = [e["data"]["text"] for e in _of_talk(events, chat_id)
              if e["type"] == "MessagePosted" and e["data"]["owner_type"] == "agent"]
    assert sorted(posted) == sorted(texts)  # one effect per key


# --- the two processes -------------------------------------------------------------------------

def _request_ids(proc: TalkProcess) -> set[str]:
    """Request ids of the request lines the process logged (JSON lines on stderr)."""
    ids = set()
    for line in proc.stderr:
        if line.startswith("{"):
            entry = orjson.loads(line)
            if entry.get("event") == "request" and "request_id" in entry:
                ids.add(entry["request_id"])
    return ids


def _samples(metrics: str, name: str) -> list[tuple[dict[str, str], float]]:
    """The labels and value of each sample of ``name`` in the Prometheus text ``metrics``."""
    return [(dict(re.findall(r'(\w+)="([^"]*)"', m.group(1))), float(m.group(2)))
            for m in re.finditer(rf"^{name}\{{(.*)\}} (\S+)$", metrics, re.M)]


def _served(metrics: str) -> Counter:
    """The process's command requests by status, from talk_http_request_seconds_count."""
    counts: Counter = Counter()
    for labels, value in _samples(metrics, "talk_http_request_seconds_count"):
        if labels.get("method") in ("POST", "PUT", "DELETE"):
            counts[labels["status"]] += int(value)
    return counts


def _appended(metrics: str) -> Counter:
    return Counter({labels["type"]: int(value)
                    for labels, value in _samples(metrics, "talk_events_appended_total")})


def _refused_appends(metrics: str) -> int:
    """Appends the store refused (a stream moved on by the other process: a version
    conflict, decided again)."""
    return sum(int(value) for labels, value in _samples(metrics, "talk_db_transaction_errors_total")
               if labels.get("name") == "append_events")


async def _ready(session: aiohttp.ClientSession, proc: TalkProcess, port: int) -> bool:
    assert proc.running, proc.output()
    try:
        async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
            return resp.status == 200
    except aiohttp.ClientError:
        return False


async def _two_command_apis(running: list[TalkProcess], tmp_path: Path, database_url: str,
                            session: aiohttp.ClientSession) -> list[tuple[TalkProcess, int]]:
    apis = []
    for i in range(2):
        port = free_port()
        env = clean_env(database_url=database_url, jwt_secret=TEST_SECRET, host="127.0.0.1",
                        command_api_port=str(port), log_level="INFO", log_format="json")
        proc = await TalkProcess.start("command-api", env=env, cwd=tmp_path,
                                       name=f"command-api-{i + 1}")
        running.append(proc)
        apis.append((proc, port))
    for proc, port in apis:
        await wait_until(lambda p=proc, n=port: _ready(session, p, n), timeout=60,
                         what=f"{proc.name} /readyz 200")
    return apis


async def test_two_command_apis_behind_one_port(tmp_path: Path, fresh_database_url: str) -> None:
    async with talk_processes() as running, aiohttp.ClientSession() as session:
        apis = await _two_command_apis(running, tmp_path, fresh_database_url, session)
        proxy = await TcpProxy.round_robin([("127.0.0.1", port) for _, port in apis]).start()
        try:
            async with aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(force_close=True)) as client:
                port = Port(client, f"http://127.0.0.1:{proxy.port}")
                await _races(port, apis, fresh_database_url, session, proxy)
        finally:
            await proxy.close()


async def _races(port: Port, apis: list[tuple[TalkProcess, int]], database_url: str,
                 session: aiohttp.ClientSession, proxy: TcpProxy) -> None:
    alice = port.agent(uuid4())
    bob = alice.colleague()
    figures: Counter = Counter()
    talks = await _adds_of_one_participant(alice, bob, figures)
    removals = await _posts_racing_a_removal(alice, bob, figures)
    edit = await _edits_of_one_message(alice, figures)
    keys = await _one_key_at_both(alice, figures)

    events = await _events(database_url)
    _check_adds(events, talks)
    _check_removals(events, *removals, bob)
    _check_edits(events, *edit)
    _check_keys(events, *keys)
    # Nothing doubled anywhere: one row per event id and per stream version.
    assert len({e["event_id"] for e in events}) == len(events)
    assert len({(e["stream_id"], e["version"]) for e in events}) == len(events)

    # Both processes served every race: each request is in exactly one process's log.
    await wait_until(lambda: _all_logged(port, apis), timeout=10, what="every request logged")
    by_process = [_request_ids(proc) for proc, _ in apis]
    shares_by_scenario: dict[str, list[int]] = {}
    assert not by_process[0] & by_process[1]
    for scenario in sorted(set(port.sent.values())):
        ids = {rid for rid, s in port.sent.items() if s == scenario}
        shares = [len(ids & logged) for logged in by_process]
        shares_by_scenario[scenario] = shares
        if len(ids) > 1:
            assert all(shares), f"{scenario}: served {shares}"
    metrics = [await _metrics(session, api_port) for _, api_port in apis]
    served = [_served(text) for text in metrics]
    assert [sum(c.values()) for c in served] == [len(port.sent.keys() & logged)
                                                for logged in by_process]
    assert proxy.served == [sum(c.values()) for c in served]
    # What the two processes say they appended is what the store holds, once.
    assert sum((_appended(text) for text in metrics), Counter()) == Counter(
        e["type"] for e in events)
    print(f"\nproxy connections per process: {proxy.served}")
    for (proc, _), counts, text in zip(apis, served, metrics, strict=True):
        print(f"{proc.name} /metrics commands by status: {dict(sorted(counts.items()))},"
              f" appended {sum(_appended(text).values())} events,"
              f" {_refused_appends(text)} appends refused on a version conflict")
    print(f"answers: {dict(sorted(figures.items()))}")
    print(f"requests served by each process, by race: {shares_by_scenario}")


async def _all_logged(port: Port, apis: list[tuple[TalkProcess, int]]) -> bool:
    logged = set().union(*(_request_ids(proc) for proc, _ in apis))
    return port.sent.keys() <= logged


async def _metrics(session: aiohttp.ClientSession, api_port: int) -> str:
    async with session.get(f"http://127.0.0.1:{api_port}/metrics") as resp:
        assert resp.status == 200
        return await resp.text()
