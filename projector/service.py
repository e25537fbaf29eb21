"""``talk projector``: the projector loop plus a small HTTP app for /livez, /readyz, /metrics."""

from __future__ import annotations

import asyncio

from aiohttp import web

from projector.runner import Projector
from services.db import Database, make_pool
from services.http.app import create_base_app, install_stop_signals, serve_until
from services.http.health import READINESS_CHECKS
from services.settings import Settings


def build_projector(settings: Settings) -> Projector:
    """The projector with everything it feeds (the publisher joins here when configured)."""
    return Projector(settings)


def health_app(settings: Settings, db: Database) -> web.Application:
    app = create_base_app(settings, "projector", authenticate=False)
    app[READINESS_CHECKS]["postgres"] = db.ping
    return app


async def projector_main(settings: Settings, stop: asyncio.Event) -> None:
    pool = make_pool(settings, min_size=1, max_size=2, name="talk-projector-health")
    await pool.open(wait=False)
    try:
        projector = build_projector(settings)
        task = asyncio.create_task(projector.run(stop), name="projector")
        try:
            await serve_until(health_app(settings, Database(pool)), settings.host,
                              settings.projector_port, stop, settings.shutdown_timeout, "projector")
        finally:
            stop.set()
            await task
    finally:
        await pool.close()


def run_projector_service(settings: Settings) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await projector_main(settings, stop)

    asyncio.run(main())
    return 0
