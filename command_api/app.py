"""The command API: validates commands, decides, appends events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from command_api.context import EVENT_STORE, STREAM_LOCKS
from command_api.idempotency import purge_periodically
from command_api.routes import add_command_routes
from command_api.stream_cache import CachedEventStore
from command_api.stream_locks import StreamLocks
from events.notifier import CommitNotifier
from events.postgres_store import PostgresEventStore
from services.http.app import create_base_app
from services.http.context import DATABASE, database_ctx
from services.settings import Settings
from services.tasks import cancel_and_wait


def install_command_api(app: web.Application, settings: Settings) -> None:
    """Add the command routes and their resources to ``app`` (which has a DATABASE ctx)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        notifier = CommitNotifier(settings.require_database_url())
        await notifier.start()
        app[EVENT_STORE] = CachedEventStore(
            PostgresEventStore(app[DATABASE], notifier),
            size=settings.command_stream_cache_streams,
            max_bytes=settings.command_stream_cache_bytes)
        app[STREAM_LOCKS] = StreamLocks()
        purger = asyncio.create_task(purge_periodically(app[DATABASE]), name="idempotency-purge")
        try:
            yield
        finally:
            await cancel_and_wait(purger)
            await notifier.stop()

    app.cleanup_ctx.append(ctx)
    add_command_routes(app)


def create_app(settings: Settings) -> web.Application:
    app = create_base_app(settings, "command-api")
    app.cleanup_ctx.append(database_ctx(settings, "talk-command-api"))
    install_command_api(app, settings)
    return app
