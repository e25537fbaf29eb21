"""``talk up``: migrations, the command API and the query API on one port, and the projector,
in one process. Ctrl-C (SIGINT) or SIGTERM stops it cleanly."""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web
from pydantic import SecretStr

from command_api.app import install_command_api
from projector.service import build_projector
from query_api.app import install_query_api
from services.http.app import create_base_app, install_stop_signals, serve_until
from services.http.context import database_ctx
from services.migrate import apply_migrations
from services.secrets import generated_secret
from services.settings import Settings


def build_up_app(settings: Settings) -> web.Application:
    app = create_base_app(settings, "talk")
    app.cleanup_ctx.append(database_ctx(settings, "talk-up"))
    install_command_api(app, settings)
    install_query_api(app, settings)
    return app


async def up_main(settings: Settings, host: str, port: int, stop: asyncio.Event) -> None:
    await apply_migrations(settings.require_database_url())
    projector = build_projector(settings)
    projector_task = asyncio.create_task(projector.run(stop), name="projector")
    try:
        app = build_up_app(settings)
        base = f"http://{host}:{port}"
        print(f"Talk is up: API {base}/v1.0/  health {base}/readyz  metrics {base}/metrics", flush=True)
        print(f"Postgres: {settings.database_url}", flush=True)
        print("ready", flush=True)
        await serve_until(app, host, port, stop, settings.shutdown_timeout, "talk")
    finally:
        stop.set()
        await projector_task


def run_up(settings: Settings, *, host: str, port: int, data_dir: str) -> int:
    overrides: dict[str, object] = {}
    if settings.jwt_secret is None:
        overrides["jwt_secret"] = SecretStr(generated_secret(data_dir, create=True) or "")
        print(f"TALK_JWT_SECRET is not set: using the secret kept in {data_dir}/jwt_secret; "
              "mint a token with `talk token --customer-id UUID --agent-id UUID`", flush=True)
    if settings.database_url is None:
        print("TALK_DATABASE_URL is not set (e.g. postgresql://postgres@127.0.0.1:5432/talk)",
              file=sys.stderr)
        return 2
    if overrides:
        settings = settings.model_copy(update=overrides)

    async def main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await up_main(settings, host, port, stop)

    asyncio.run(main())
    return 0
