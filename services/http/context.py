"""Resources an app holds for its lifetime, opened and closed in ``cleanup_ctx``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from services.db import Database, make_pool
from services.http.health import READINESS_CHECKS
from services.migrate import schema_check
from services.settings import Settings

DATABASE = web.AppKey("database", Database)


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
