"""The command API: validates commands, decides, appends events."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from command_api.context import EVENT_STORE
from command_api.routes import add_command_routes
from events.postgres_store import PostgresEventStore
from services.http.app import create_base_app
from services.http.context import DATABASE, database_ctx
from services.settings import Settings


def install_command_api(app: web.Application, settings: Settings) -> None:
    """Add the command routes and their resources to ``app`` (which has a DATABASE ctx)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[EVENT_STORE] = PostgresEventStore(app[DATABASE])
        yield

    app.cleanup_ctx.append(ctx)
    add_command_routes(app)


def create_app(settings: Settings) -> web.Application:
    app = create_base_app(settings, "command-api")
    app.cleanup_ctx.append(database_ctx(settings, "talk-command-api"))
    install_command_api(app, settings)
    return app
