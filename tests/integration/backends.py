"""The Postgres side of the services in tests: which backend holds a service's advisory lock,
which client socket a backend serves, and terminating one backend (checked to have happened).

Everything is limited to the test's own database, so tests running beside it on the same
server (other sessions, other databases) are never touched."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

_HOLDER = (
    "SELECT l.pid, a.client_port, a.state, a.backend_xid IS NOT NULL AS writing,"
    "       a.xact_start IS NOT NULL AS in_transaction"
    "  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.database = ("
    "       SELECT oid FROM pg_database WHERE datname = current_database())"
    "   AND l.classid = %s AND l.objid = %s AND l.objsubid = 1"
)


async def lock_holder(url: str, key: int) -> dict | None:
    """The backend holding the session-level advisory lock ``key`` in this database (pid,
    client_port, state, writing, in_transaction), or None."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        cur = await conn.execute(_HOLDER, (key >> 32, key & 0xFFFF_FFFF))
        return await cur.fetchone()


async def backend_alive(url: str, pid: int) -> bool:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,))
        return (await cur.fetchone())[0] > 0


async def terminate_backend(url: str, pid: int) -> bool:
    """``pg_terminate_backend`` of one backend of this database; True if it was signalled."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE pid = %s AND datname = current_database()", (pid,))
        row = await cur.fetchone()
        return bool(row and row[0])


def local_tcp_ports(pid: int) -> set[int]:
    """The local ports of the TCP sockets process ``pid`` has open (from /proc)."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in fd_dir.iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
