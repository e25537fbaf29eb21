"""``/readyz`` follows Postgres: the services reach their database through a TCP proxy the test
cuts (every connection dropped, new ones refused) and restores. While it is cut, every
service answers ``/readyz`` 503 (and ``/livez`` still 200: the process is fine); once it is
back, 200 again, without a restart. Only this test's own database and connections are
touched, so other tests running against the same server are not disturbed."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
import psycopg

from services.migrate import apply_migrations
from tests.e2e.processes import TalkProcess, clean_env, free_port, talk_processes
from tests.e2e.resources import empty_database
from tests.integration.publishing.proxy import TcpProxy
from tests.support import TEST_SECRET, wait_until

# The two ways a service holds Postgres: the APIs' pool (the query API's is the same code as
# the command API's) and the projector's own connection beside its health pool.
SERVICES = {"command-api": "command_api_port", "projector": "projector_port"}


def _through(proxy: TcpProxy, database_url: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    info.update(host="127.0.0.1", port=str(proxy.port))
    return psycopg.conninfo.make_conninfo(**info)


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, dict]:
    async with session.get(url) as resp:
        return resp.status, await resp.json(content_type=None)


async def test_readyz_follows_postgres(tmp_path: Path, postgres_admin_url: str) -> None:
    target = psycopg.conninfo.conninfo_to_dict(postgres_admin_url)
    proxy = await TcpProxy(target.get("host") or "127.0.0.1", int(target.get("port") or 5432)).start()
    ports = {name: free_port() for name in SERVICES}
    try:
        with empty_database(postgres_admin_url) as database_url:
            await apply_migrations(database_url)
            env = clean_env(database_url=_through(proxy, database_url), jwt_secret=TEST_SECRET,
                            host="127.0.0.1", db_connect_timeout="1",
                            **{SERVICES[n]: str(p) for n, p in ports.items()})
            async with talk_processes() as running, aiohttp.ClientSession() as session:
                procs = {}
                for name in SERVICES:
                    procs[name] = await TalkProcess.start(name, env=env, cwd=tmp_path)
                    running.append(procs[name])

                async def all_answer(status: int) -> bool:
                    for name, port in ports.items():
                        assert procs[name].running, procs[name].output()
                        try:
                            got, _ = await _get(session, f"http://127.0.0.1:{port}/readyz")
                        except aiohttp.ClientConnectionError:
                            return False  # not listening yet
                        if got != status:
                            return False
                    return True

                await wait_until(lambda: all_answer(200), timeout=60, what="every /readyz 200")

                proxy.cut()
                await wait_until(lambda: all_answer(503), timeout=20,
                                 what="every /readyz 503 while Postgres is unreachable")
                for port in ports.values():
                    status, body = await _get(session, f"http://127.0.0.1:{port}/readyz")
                    assert status == 503 and body["checks"]["postgres"].startswith("failed"), body
                    assert (await _get(session, f"http://127.0.0.1:{port}/livez"))[0] == 200

                proxy.restore()
                await wait_until(lambda: all_answer(200), timeout=30,
                                 what="every /readyz 200 once Postgres is back")

                for proc in procs.values():
                    proc.send(signal.SIGTERM)
                for proc in procs.values():
                    assert await proc.exit_code(15) == 0, proc.output()
    finally:
        await proxy.close()
