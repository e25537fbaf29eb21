"""The embedded PostgreSQL on its own: a second server on the same data directory is refused
(the running one is neither shared nor stopped), a killed owner (SIGKILL: no cleanup code
runs) still leaves no ``postgres`` behind, and the data survives for the next start."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import psycopg
import pytest

from services.embedded_postgres import EmbeddedPostgres, EmbeddedPostgresError
from tests.e2e.processes import children_of, postgres_processes, process_alive
from tests.support import wait_until

OWNER = """
import signal, sys
from pathlib import Path
from services.embedded_postgres import EmbeddedPostgres
server = EmbeddedPostgres(Path(sys.argv[1]))
print("started", server.start(), server.pid, flush=True)
signal.pause()  # the owner lives until the test kills it
"""


async def _count_rows(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT count(*) FROM kept")
        return (await cur.fetchone())[0]


async def test_one_server_per_data_dir_and_none_left_when_the_owner_is_killed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", OWNER, str(data), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        assert owner.stdout is not None
        line = b""
        while not line.startswith(b"started "):  # (structlog prints its lines here too)
            line = await asyncio.wait_for(owner.stdout.readline(), 60)
            assert line, "the owner exited before starting the server"
        _, url, pid = line.decode().split()
        postmaster = int(pid)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute("CREATE TABLE kept (n int)")
            await conn.execute("INSERT INTO kept VALUES (1), (2)")

        with pytest.raises(EmbeddedPostgresError, match="already running"):
            EmbeddedPostgres(data).start()
        assert await _count_rows(url) == 2  # the refused start left the running one alone

        owner.send_signal(signal.SIGKILL)
        await owner.wait()

        async def gone() -> bool:
            return not process_alive(postmaster) and not children_of(postmaster)

        await wait_until(gone, timeout=15, what="the orphaned postmaster to exit")
        assert postgres_processes(data / "pgdata") == []
    finally:
        if owner.returncode is None:
            owner.kill()
            await owner.wait()

    again = EmbeddedPostgres(data)
    try:
        url = again.start()
        assert not again.created
        assert await _count_rows(url) == 2
    finally:
        again.stop()
    assert postgres_processes(data / "pgdata") == []
