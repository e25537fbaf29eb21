"""The query API: read-only HTTP over the projected read tables."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from query_api.consistency import STANDBY_POLL, TIMEOUT, WATCHER, ProjectionWatcher
from query_api.context import PRIMARY_STORE, READ_STORE
from query_api.read_store import ReadStore
from query_api.routes import add_query_routes
from services.http.app import create_base_app
from services.http.context import DATABASE, READ_DATABASE, database_ctx, read_database_ctx
from services.settings import Settings


def install_query_api(app: web.Application, settings: Settings) -> None:
    """Add the query routes and their resources to ``app`` (which has a DATABASE ctx).

    Reads go to ``TALK_READ_DATABASE_URL`` (a hot standby) when set; the store's head, which
    judges ``X-Talk-Min-Position``, is read on the primary. The projector's notifications
    come from the primary (a standby cannot LISTEN); on a standby, waiters poll it more
    often, since its replay trails them."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[READ_STORE] = ReadStore(app[READ_DATABASE])
        app[PRIMARY_STORE] = ReadStore(app[DATABASE])
        watcher = ProjectionWatcher(settings.require_database_url(),
                                    poll=STANDBY_POLL if settings.reads_elsewhere else None)
        await watcher.start()
        app[WATCHER] = watcher
        try:
            yield
        finally:
            await watcher.stop()

    app[TIMEOUT] = settings.read_your_writes_timeout
    app.cleanup_ctx.append(read_database_ctx(settings, "talk-query-api"))
    app.cleanup_ctx.append(ctx)
    add_query_routes(app)


def create_app(settings: Settings) -> web.Application:
    app = create_base_app(settings, "query-api")
    app.cleanup_ctx.append(database_ctx(settings, "talk-query-api"))
    install_query_api(app, settings)
    return app
