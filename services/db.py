"""The Postgres connection pool, and the one function every SQL transaction goes through.

``Database.transaction(name)`` names each transaction so logs and metrics say which query
ran (``talk_db_transaction_seconds{name=...}``). Connections are in autocommit mode: a lone
statement through ``Database.statement(name)`` is its own transaction (one round trip).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
import structlog
from prometheus_client import Counter, Histogram
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from services.settings import Settings

log = structlog.get_logger("talk.db")

DB_SECONDS = Histogram(
    "talk_db_transaction_seconds",
    "Time spent in a named SQL transaction.",
    ["name"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
DB_ERRORS = Counter("talk_db_transaction_errors_total", "Named SQL transactions that failed.", ["name"])


def make_pool(settings: Settings, *, min_size: int | None = None, max_size: int | None = None,
              name: str = "talk") -> AsyncConnectionPool:
    """An unopened pool of autocommit connections returning dict rows."""

    async def configure(conn: psycopg.AsyncConnection) -> None:
        await conn.set_autocommit(True)

    return AsyncConnectionPool(
        settings.require_database_url(),
        min_size=min_size or settings.db_pool_min_size,
        max_size=max_size or settings.db_pool_max_size,
        kwargs={"row_factory": dict_row, "connect_timeout": settings.db_connect_timeout,
                "application_name": name},
        configure=configure,
        open=False,
        name=name,
        timeout=settings.db_connect_timeout * 2,
    )


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

    @asynccontextmanager
    async def transaction(self, name: str) -> AsyncIterator[psycopg.AsyncConnection]:
        """``BEGIN`` … ``COMMIT`` on a pooled connection; rolled back on error."""
        start = time.perf_counter()
        try:
            async with self.pool.connection() as conn, conn.transaction():
                yield conn
        except BaseException:
            DB_ERRORS.labels(name).inc()
            raise
        finally:
            self._finished("db.transaction", name, start)

    @asynccontextmanager
    async def statement(self, name: str) -> AsyncIterator[psycopg.AsyncConnection]:
        """A pooled autocommit connection: each statement run on it commits by itself."""
        start = time.perf_counter()
        try:
            async with self.pool.connection() as conn:
                yield conn
        except BaseException:
            DB_ERRORS.labels(name).inc()
            raise
        finally:
            self._finished("db.statement", name, start)

    async def ping(self) -> None:
        async with self.statement("ping") as conn:
            await conn.execute("SELECT 1")
