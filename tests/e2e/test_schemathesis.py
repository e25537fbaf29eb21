"""The contract run: Schemathesis against ``talk up`` running as a real process over HTTP,
exactly as an outside tester runs it (``st --config-file tests/e2e/schemathesis.toml run``):
every phase (examples, coverage, fuzzing, and the stateful phase that follows the
document's links: create a talk, read it, add participants, post, react, reply, edit,
delete), positive and negative data, every check (no server error; answers, statuses,
headers and content types as documented; schema-valid requests accepted, schema-violating
ones refused; authentication enforced; a created resource available; problem types as each
operation lists them). Bounded by the config: a fixed seed, derandomized, 6 examples per
operation and 5 steps per stateful scenario (under two minutes here).

The caller is an agent with a group talk of its own (for the reads that take no link).
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

from services.auth import mint_token
from services.openapi import OPENAPI_PATH, build_document, talk_routes
from tests.support import TEST_SECRET

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
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
        self.base, self.headers, self.positions = base, headers, ["0"]

    @property
    def position(self) -> str:
        return max(self.positions, key=int)  # the tokens compare as integers

    def post(self, path: str, body: dict) -> dict:
        resp = requests.post(f"{self.base}{path}", json=body, headers=self.headers, timeout=10)
        assert resp.status_code == 200, resp.text
        self.positions.append(resp.headers["X-Talk-Position"])
        return resp.json()

    def get(self, path: str) -> dict:
        """Once the read side has applied every write made here (read-your-writes)."""
        deadline = time.monotonic() + START_TIMEOUT
        while True:  # each try waits server-side (TALK_READ_YOUR_WRITES_TIMEOUT) for it
            resp = requests.get(f"{self.base}{path}", timeout=10,
                                headers={**self.headers, MIN_POSITION: self.position})
            if resp.status_code == 200:
                return resp.json()
            assert resp.status_code == 503 and time.monotonic() < deadline, resp.text


@pytest.fixture(scope="module")
def caller(talk_up: str) -> dict:
    """An agent with a group talk (and a second member) holding a message, read back."""
    headers = {"Authorization": f"Bearer {mint_token(TEST_SECRET, uuid4(), uuid4())}"}
    seed = Seeder(talk_up, headers)
    chat_id = seed.post(CHATS, {"type": "group", "name": "schemathesis", "participants": [
        {"owner_type": "agent", "owner_id": str(uuid4())}]})["id"]
    seed.post(MESSAGES, {"chat_id": chat_id, "type": "normal", "text": "hello"})
    assert len(seed.get(f"{CHATS}/{chat_id}/participants")["result"]) == 2
    return {"headers": headers}


CONFIG = ROOT / "tests" / "e2e" / "schemathesis.toml"
RUN_TIMEOUT = 600.0  # a hang, not the expected run time


def test_the_served_document_is_the_one_tested(talk_up: str):
    served = requests.get(f"{talk_up}{OPENAPI_PATH}", timeout=10)
    assert served.status_code == 200
    assert served.json() == build_document(talk_routes())


def test_the_contract_run_is_clean(talk_up, caller):
    """``st run`` with every phase and check finds nothing (exit 0); its report otherwise."""
    st = Path(sys.executable).parent / "st"
    run = subprocess.run(
        [str(st), "--config-file", str(CONFIG), "--no-color", "run",
         "-H", f"Authorization: {caller['headers']['Authorization']}", f"{talk_up}{OPENAPI_PATH}"],
        cwd=ROOT, capture_output=True, text=True, timeout=RUN_TIMEOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    report = run.stdout[-20000:] + run.stderr[-4000:]
    assert run.returncode == 0, report
    assert " passed" in run.stdout and "Stateful" in run.stdout, report
