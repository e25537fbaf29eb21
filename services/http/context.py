"""Resources an app holds for its lifetime, opened and closed in ``cleanup_ctx``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from services.db import Database, make_pool
from services.http.health import READINESS_CHECKS
from services.migrate import schema_check
from services.settings import Settings

DATABASE = web.AppKey("database", Database)
# Where the query API and the gateway's checks read: a hot standby with
# TALK_READ_DATABASE_URL, else the same Database as DATABASE.
READ_DATABASE = web.AppKey("read_database", Database)


def database_ctx(settings: Settings, name: str) -> Callable[[web.Application], AsyncIterator[None]]:
    """Opens the pool on startup (without waiting for Postgres: /readyz reports it) and closes
    it on cleanup."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        pool = make_pool(settings, name=name)
        await pool.open(wait=False)
        db = Database(pool)
        app[DATABASE] = db
        app[READINESS_CHECKS]["postgres"] = db.ping
        app[READINESS_CHECKS]["schema"] = schema_check(db)  # not ready before `talk migrate`
        try:
            yield
        finally:
            await pool.close()

    return ctx


def read_database_ctx(settings: Settings, name: str,
                      ) -> Callable[[web.Application], AsyncIterator[None]]:
    """Sets ``READ_DATABASE`` (after ``database_ctx``): a second pool on
    ``TALK_READ_DATABASE_URL`` with its own readiness check (``postgres_read``), or the
    primary's Database when reads are not sent elsewhere. Installed by each part that
    reads (query API, gateway); the first one opens it, the others share it."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        if READ_DATABASE in app:
            yield
            return
        if not settings.reads_elsewhere:
            app[READ_DATABASE] = app[DATABASE]
            yield
            return
        pool = make_pool(settings, name=f"{name}-read", url=settings.require_read_database_url())
        await pool.open(wait=False)
        db = Database(pool)
        app[READ_DATABASE] = db
        app[READINESS_CHECKS]["postgres_read"] = db.ping
        try:
            yield
        finally:
            await pool.close()

    return ctx
