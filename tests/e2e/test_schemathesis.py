"""Schemathesis against ``talk up`` running as a real process over HTTP: every operation of the
OpenAPI document, fed generated input (the coverage phase's boundary and invalid values, then
random valid ones), must never answer 5xx and never answer something the document does not
describe (checks ``not_a_server_error`` and ``response_schema_conformance``).

The caller is an agent with talks and messages of its own; generated talk, message and
participant ids are swapped for real ones part of the time (a Hypothesis draw, so the run
stays deterministic) so that the handlers are exercised past their 404s too. Bounded:
``MAX_EXAMPLES`` random cases per operation, derandomized.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from services.auth import mint_token
from services.openapi import OPENAPI_PATH, build_document, talk_routes
from tests.support import TEST_SECRET

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
MAX_EXAMPLES = 25
SEED = 20240501
START_TIMEOUT = 60.0
MIN_POSITION = "X-Talk-Min-Position"
CHATS = "/v1.0/service_agents/talk_chats"
MESSAGES = "/v1.0/service_agents/talk_messages"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_ready(proc: subprocess.Popen, base: str, log: Path) -> None:
    """Wait (with a deadline) for the child's ``ready`` line, printed once its port listens;
    a thread reads its stdout for the rest of its life, so the pipe never fills."""
    ready = threading.Event()

    def read_stdout() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("ready"):
                ready.set()

    threading.Thread(target=read_stdout, name="talk-up-stdout", daemon=True).start()
    if not ready.wait(START_TIMEOUT):
        state = "exited" if proc.poll() is not None else "not ready"
        raise AssertionError(f"talk up {state} after {START_TIMEOUT}s:\n{log.read_text()[-4000:]}")
    assert requests.get(f"{base}/readyz", timeout=5).status_code == 200


@pytest.fixture(scope="module")
def talk_up(database_url: str, tmp_path_factory) -> Iterator[str]:
    """``talk up`` on a free port against the session database; its base URL."""
    port = _free_port()
    log = tmp_path_factory.mktemp("talk_up") / "talk-up.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALK_")}
    env.update(TALK_DATABASE_URL=database_url, TALK_JWT_SECRET=TEST_SECRET,
               TALK_READ_YOUR_WRITES_TIMEOUT="0.2", TALK_LOG_LEVEL="WARNING",
               TALK_PROJECTOR_POLL_INTERVAL="0.2")
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli", "up", "--host", "127.0.0.1",
             "--port", str(port), "--data-dir", str(log.parent)],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=out,
            text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_ready(proc, base, log)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Seeder:
    def __init__(self, base: str, headers: dict[str, str]) -> None:
        self.base, self.headers, self.positions = base, headers, [0]

    @property
    def position(self) -> int:
        return max(self.positions)

    def post(self, path: str, body: dict) -> dict:
        resp = requests.post(f"{self.base}{path}", json=body, headers=self.headers, timeout=10)
        assert resp.status_code == 200, resp.text
        self.positions.append(int(resp.headers["X-Talk-Position"]))
        return resp.json()

    def get(self, path: str) -> dict:
        """Once the read side has applied every write made here (read-your-writes)."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:  # each try waits server-side (TALK_READ_YOUR_WRITES_TIMEOUT) for it
            resp = requests.get(f"{self.base}{path}", timeout=10,
                                headers={**self.headers, MIN_POSITION: str(self.position)})
            if resp.status_code == 200:
                return resp.json()
            assert resp.status_code == 503 and time.monotonic() < deadline, resp.text


@pytest.fixture(scope="module")
def caller(talk_up: str) -> dict:
    """An agent with a group talk (and a second member) holding two messages, and a second
    talk. The ``doomed_*`` ones are what the generated DELETEs may remove, so the others
    stay usable for the rest of the run."""
    headers = {"Authorization": f"Bearer {mint_token(TEST_SECRET, uuid4(), uuid4())}"}
    seed = Seeder(talk_up, headers)
    other = str(uuid4())
    chat_id = seed.post(CHATS, {"type": "group", "name": "schemathesis", "participants": [
        {"owner_type": "agent", "owner_id": other}]})["id"]
    doomed_chat_id = seed.post(CHATS, {"type": "group", "name": "to delete"})["id"]
    message_id = seed.post(MESSAGES, {"chat_id": chat_id, "type": "normal", "text": "hello"})["id"]
    doomed_message_id = seed.post(MESSAGES, {"chat_id": chat_id, "type": "normal",
                                             "text": "to delete"})["id"]
    participants = seed.get(f"{CHATS}/{chat_id}/participants")["result"]
    participant_id = next(p["id"] for p in participants if p["owner_id"] == other)
    return {"headers": headers, "positions": sorted(seed.positions),
            "ids": {"chat_id": chat_id, "message_id": message_id, "parent_id": message_id,
                    "participant_id": participant_id},
            "doomed": {f"{CHATS}/{{chat_id}}": {"chat_id": doomed_chat_id},
                       f"{MESSAGES}/{{message_id}}": {"message_id": doomed_message_id}}}


def _config() -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "generation": {"deterministic": True, "max-examples": MAX_EXAMPLES, "database": "none"},
        "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True},
                   "fuzzing": {"enabled": True}, "stateful": {"enabled": False}},
        "request-timeout": 10,
    })


# The document the service serves (test_the_served_document_is_the_one_tested holds them
# equal), loaded at import so that pytest reports one test per operation.
schema = schemathesis.openapi.from_dict(build_document(talk_routes()), config=_config())


def use_some_real_values(case, data, caller: dict) -> None:
    """Swap generated ids for real ones, or not (drawn); likewise a page token for ``""``.

    Each value of a generated ``X-Talk-Min-Position`` (digits, comma-separated) becomes the
    highest ``X-Talk-Position`` a command answered (and the read side applied) not above it:
    a value no command answered is refused with 400, as documented. Malformed values are
    kept (they must get 400).
    """
    for name, value in list((case.headers or {}).items()):
        parts = str(value).split(",")
        if name.lower() == MIN_POSITION.lower() and all(p.strip().isdigit() for p in parts):
            case.headers[name] = ",".join(
                str(max(p for p in caller["positions"] if p <= int(part))) for part in parts)
    real = dict(caller["ids"])
    if case.method.upper() == "DELETE":
        real.update(caller["doomed"].get(case.path, {}))
    for values in (case.path_parameters, case.query, case.body):
        if not isinstance(values, dict):
            continue
        for key in real:
            if key in values and data.draw(st.booleans(), label=f"real {key}"):
                values[key] = real[key]
        if "page_token" in values and data.draw(st.booleans(), label="first page"):
            values["page_token"] = ""


def test_the_served_document_is_the_one_tested(talk_up: str):
    served = requests.get(f"{talk_up}{OPENAPI_PATH}", timeout=10)
    assert served.status_code == 200
    assert served.json() == build_document(talk_routes())


@schema.parametrize()
@schema.given(data=st.data())
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_answers_match_the_document(case, data, talk_up, caller):
    use_some_real_values(case, data, caller)
    case.call_and_validate(base_url=talk_up, headers=caller["headers"],
                           checks=[not_a_server_error, response_schema_conformance])
