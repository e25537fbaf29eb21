"""The Postgres connection pool, and the one function every SQL transaction goes through.

``Database.transaction(name)`` names each transaction so logs and metrics say which query
ran (``talk_db_transaction_seconds{name=...}``). Connections are in autocommit mode: a lone
statement through ``Database.statement(name)`` is its own transaction (one round trip).

Outages. A pooled connection is checked before it is handed out: a server that restarted or
went away has closed its end, so the socket of an idle connection has something to read (the
server's goodbye, or the end of the stream); such a connection is closed (the pool opens a
new one) and the next one is tried, at the cost of a ``poll`` and no round trip. A failure
that means Postgres cannot be used (no connection within the connect timeout, a connection
lost) is raised as :class:`DatabaseUnavailable`, which says whether a write may have been
committed; the HTTP layer answers it 503 with ``Retry-After``. The pool keeps trying to
connect on its own, and gives an attempt up after a few seconds so that a new one starts
soon after Postgres is back.
"""

from __future__ import annotations

import select
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
import psycopg
import structlog
from prometheus_client import Counter, Histogram
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from services.settings import Settings

log = structlog.get_logger("talk.db")

DB_SECONDS = Histogram(
    "talk_db_transaction_seconds",
    "Time spent in a named SQL transaction.",
    ["name"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
DB_ERRORS = Counter("talk_db_transaction_errors_total", "Named SQL transactions that failed.", ["name"])
DB_CONNECTIONS_DISCARDED = Counter(
    "talk_db_connections_discarded_total",
    "Pooled connections found closed by the server when checked out, and replaced.")
RECONNECT_ATTEMPT_SECONDS = 5.0  # the pool gives a reconnection up (and starts afresh) after


class Rollback(Exception):  # noqa: N818 (a signal, not an error)
    """Raised inside :meth:`Database.transaction` to end it on purpose: rolled back like any
    exception, but not counted as a failure of the named transaction (an idempotent replay
    found by the key's claim, say)."""


class DatabaseUnavailable(psycopg.OperationalError):
    """Postgres could not be used: no connection within the timeout, or the connection was
    lost. ``outcome_unknown``: the connection was lost while a write may have been
    committing (a COMMIT, or an autocommit statement), so it may or may not be stored."""

    def __init__(self, name: str, cause: BaseException, *, outcome_unknown: bool) -> None:
        super().__init__(f"{name}: {type(cause).__name__}: {cause}".strip())
        self.name = name
        self.outcome_unknown = outcome_unknown


async def connect_dedicated(settings: Settings, application_name: str, *,
                            url: str | None = None) -> psycopg.AsyncConnection:
    """A connection of its own (not pooled) as the pool's are: autocommit, dict rows, json
    decoded by orjson; for the loops that hold one for long (a projector partition, a
    publisher, a lock holder)."""
    conn = await psycopg.AsyncConnection.connect(
        url or settings.require_database_url(), autocommit=True, row_factory=dict_row,
        application_name=application_name, connect_timeout=settings.db_connect_timeout)
    set_json_loads(orjson.loads, conn)
    try:
        # If this process dies while its server process waits (a lock, a long statement),
        # the server notices within a second and ends the session, so the advisory locks it
        # holds (a partition's, a publisher's) are free for a takeover. PostgreSQL 14+.
        await conn.execute("SET client_connection_check_interval = 1000")
    except psycopg.errors.UndefinedObject:
        pass
    return conn


def make_pool(settings: Settings, *, min_size: int | None = None, max_size: int | None = None,
              name: str = "talk", url: str | None = None) -> AsyncConnectionPool:
    """An unopened pool of autocommit connections returning dict rows (``json``/``jsonb``
    decoded by orjson), on ``url`` (default: the primary, ``TALK_DATABASE_URL``)."""

    async def configure(conn: psycopg.AsyncConnection) -> None:
        await conn.set_autocommit(True)
        set_json_loads(orjson.loads, conn)  # jsonb columns: ~5x faster than json.loads

    return AsyncConnectionPool(
        url or settings.require_database_url(),
        min_size=min_size or settings.db_pool_min_size,
        max_size=max_size or settings.db_pool_max_size,
        kwargs={"row_factory": dict_row, "connect_timeout": settings.db_connect_timeout,
                "application_name": name},
        configure=configure,
        open=False,
        name=name,
        timeout=settings.db_connect_timeout,
        reconnect_timeout=max(RECONNECT_ATTEMPT_SECONDS, settings.db_connect_timeout),
    )


def _closed_by_server(conn: psycopg.AsyncConnection) -> bool:
    """Whether an idle connection has anything to read: the server's goodbye or the end of
    the stream (an idle autocommit connection is sent nothing else but rare notices)."""
    if conn.closed or conn.broken:
        return True
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN)
    return bool(poller.poll(0))


async def _usable(conn: psycopg.AsyncConnection) -> bool:
    if not _closed_by_server(conn):
        return True
    if not (conn.closed or conn.broken):
        try:
            await conn.execute("")  # a notice, say: reading it proves the connection works
            return True
        except psycopg.Error:
            pass
    return False


def _lost(exc: BaseException, conn: psycopg.AsyncConnection | None) -> bool:
    """Whether ``exc`` means Postgres could not be used (rather than a refused statement)."""
    if isinstance(exc, PoolTimeout):
        return True
    return (isinstance(exc, psycopg.OperationalError) and conn is not None
            and (conn.closed or conn.broken))


class Database:
    """Named transactions over a pool."""

    def __init__(self, pool: AsyncConnectionPool) -> None:
        self.pool = pool
        # Bound once: a lazy structlog proxy binds a new logger on every call, and the
        # labelled histogram child is looked up once per name (both are on every statement).
        self._log = log.bind()
        self._seconds: dict[str, Histogram] = {}

    def _finished(self, kind: str, name: str, start: float) -> None:
        elapsed = time.perf_counter() - start
        seconds = self._seconds.get(name)
        if seconds is None:
            seconds = self._seconds[name] = DB_SECONDS.labels(name)
        seconds.observe(elapsed)
        self._log.debug(kind, name=name, ms=round(elapsed * 1000, 3))

    async def _checked_out(self) -> psycopg.AsyncConnection:
        """A pooled connection the server has not closed; raises ``PoolTimeout``."""
        deadline = time.monotonic() + self.pool.timeout
        while True:
            conn = await self.pool.getconn(max(deadline - time.monotonic(), 0.001))
            try:
                usable = await _usable(conn)
            except BaseException:
                await self.pool.putconn(conn)
                raise
            if usable:
                return conn
            DB_CONNECTIONS_DISCARDED.inc()
            await conn.close()
            await self.pool.putconn(conn)  # closed: the pool opens another in its place

    @asynccontextmanager
    async def _connection(self, kind: str, name: str,
                          ) -> AsyncIterator[tuple[psycopg.AsyncConnection, list[str]]]:
        """A checked connection, and a one-item list saying how far the caller got
        (``connect``, ``run``, ``commit``); errors counted, timed, and an outage raised as
        :class:`DatabaseUnavailable`."""
        start = time.perf_counter()
        stage = ["connect"]
        conn: psycopg.AsyncConnection | None = None
        try:
            conn = await self._checked_out()
            try:
                stage[0] = "run"
                yield conn, stage
            finally:
                await self.pool.putconn(conn)  # a broken one is replaced by the pool
        except BaseException as exc:
            if not isinstance(exc, Rollback):
                DB_ERRORS.labels(name).inc()
            if not isinstance(exc, DatabaseUnavailable) and _lost(exc, conn):
                committing = stage[0] == "commit" or (kind == "db.statement" and stage[0] == "run")
                raise DatabaseUnavailable(name, exc, outcome_unknown=committing) from exc
            raise
        finally:
            self._finished(kind, name, start)

    @asynccontextmanager
    async def transaction(self, name: str) -> AsyncIterator[psycopg.AsyncConnection]:
        """``BEGIN`` … ``COMMIT`` on a pooled connection; rolled back on error."""
        async with self._connection("db.transaction", name) as (conn, stage):
            async with conn.transaction():
                yield conn
                stage[0] = "commit"

    @asynccontextmanager
    async def statement(self, name: str) -> AsyncIterator[psycopg.AsyncConnection]:
        """A pooled autocommit connection: each statement run on it commits by itself."""
        async with self._connection("db.statement", name) as (conn, _):
            yield conn

    async def ping(self) -> None:
        async with self.statement("ping") as conn:
            await conn.execute("SELECT 1")
