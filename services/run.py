"""Running one HTTP service as a process: serve until SIGTERM/SIGINT, then drain and exit 0."""

from __future__ import annotations

import asyncio

from aiohttp import web

from services.event_loop import run_main
from services.http.app import install_stop_signals, serve_until
from services.settings import Settings


def run_http_service(app: web.Application, settings: Settings, port: int, name: str) -> int:
    async def main() -> None:
        stop = asyncio.Event()
        install_stop_signals(stop)
        await serve_until(app, settings.host, port, stop, settings.shutdown_timeout, name)

    run_main(main(), settings)
    return 0
