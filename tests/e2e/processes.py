"""Running ``talk`` commands as real processes for the end-to-end tests: their output read
line by line as it comes, signals, exit codes, and nothing left running after a test."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

START_TIMEOUT = 60.0  # a first `talk up` runs initdb; generous for a loaded 2-core machine
READY_LINE = re.compile(r"^ready in [0-9.]+ s: (http://\S+)")


def clean_env(**talk: str) -> dict[str, str]:
    """This process's environment without any ``TALK_*`` setting, plus ``talk``'s (given
    without the prefix, e.g. ``database_url=...``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALK_")}
    env.update({f"TALK_{k.upper()}": v for k, v in talk.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TalkProcess:
    """``python -m services.cli ARGS`` (what the ``talk`` script runs) as a child process."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._changed = asyncio.Event()
        self._readers = [asyncio.create_task(self._read(proc.stdout, self.stdout)),
                         asyncio.create_task(self._read(proc.stderr, self.stderr))]

    @classmethod
    async def start(cls, *args: str, env: dict[str, str], cwd: Path,
                    name: str | None = None) -> TalkProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.cli", *args, cwd=cwd, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(name or args[0], proc)

    async def _read(self, stream: asyncio.StreamReader | None, into: list[str]) -> None:
        assert stream is not None
        while line := await stream.readline():
            into.append(line.decode(errors="replace").rstrip("\n"))
            self._changed.set()
        self._changed.set()

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    def output(self, last: int = 40) -> str:
        return (f"--- {self.name} stdout ---\n" + "\n".join(self.stdout[-last:])
                + f"\n--- {self.name} stderr ---\n" + "\n".join(self.stderr[-last:]))

    async def wait_for_line(self, pattern: re.Pattern[str], *, stream: str = "stdout",
                            timeout: float = START_TIMEOUT) -> re.Match[str]:
        """The first line of ``stream`` matching ``pattern``, waiting for it to be printed."""
        lines = self.stdout if stream == "stdout" else self.stderr
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._changed.clear()
            for line in lines:
                if m := pattern.search(line):
                    return m
            if all(r.done() for r in self._readers):
                raise AssertionError(f"{self.name} ended (exit {self.proc.returncode}) without "
                                     f"printing {pattern.pattern!r}\n{self.output()}")
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"{self.name} did not print {pattern.pattern!r} within "
                                     f"{timeout} s\n{self.output()}")
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass

    async def ready_url(self) -> str:
        """``talk up``'s base URL, from its ready line."""
        return (await self.wait_for_line(READY_LINE)).group(1)

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    async def exit_code(self, timeout: float) -> int:
        """Wait for the process to end (at most ``timeout``) and its output to be read."""
        try:
            code = await asyncio.wait_for(self.proc.wait(), timeout)
        except TimeoutError:
            raise AssertionError(f"{self.name} still running {timeout} s after the signal\n"
                                 f"{self.output()}") from None
        await asyncio.gather(*self._readers)
        return code

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        self.send(sig)
        return await self.exit_code(timeout)

    async def kill(self) -> None:
        if self.running:
            self.proc.kill()
            await self.proc.wait()
        for reader in self._readers:
            reader.cancel()


@asynccontextmanager
async def talk_processes() -> AsyncIterator[list[TalkProcess]]:
    """A list to add started processes to; whatever is still running at the end is killed."""
    started: list[TalkProcess] = []
    try:
        yield started
    finally:
        for proc in started:
            await proc.kill()


async def talk_command(*args: str, env: dict[str, str], cwd: Path, timeout: float = 30.0) -> str:
    """Run a one-shot ``talk`` command; its stdout (it must exit 0)."""
    proc = await TalkProcess.start(*args, env=env, cwd=cwd)
    try:
        code = await proc.exit_code(timeout)
    finally:
        await proc.kill()
    assert code == 0, f"talk {' '.join(args)} exited {code}\n{proc.output()}"
    return "\n".join(proc.stdout)


def postgres_processes(pgdata: Path) -> list[int]:
    """Pids of live ``postgres`` processes whose command line names ``pgdata``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and cmdline and cmdline[0].endswith(b"postgres") \
                and str(pgdata).encode() in cmdline:
            found.append(int(entry.name))
    return found


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a running (not zombie) process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def children_of(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid and process_alive(int(entry.name)):
                out.append(int(entry.name))
    return out
