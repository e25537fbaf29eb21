"""The base every aiohttp service is built on, and how it is served."""

from __future__ import annotations

import asyncio
import signal

import structlog
from aiohttp import web

from services.http.health import add_health_routes
from services.http.middlewares import make_auth_middleware, make_request_middleware
from services.settings import Settings

log = structlog.get_logger("talk.http")

MAX_BODY = 1024 * 1024  # 1 MiB; larger bodies are answered 413


def create_base_app(settings: Settings, service: str, *, authenticate: bool = True) -> web.Application:
    middlewares = [make_request_middleware(service)]
    if authenticate:
        middlewares.append(make_auth_middleware(settings.require_jwt_secret()))
    app = web.Application(client_max_size=MAX_BODY, middlewares=middlewares)
    add_health_routes(app)
    return app


def install_stop_signals(stop: asyncio.Event) -> None:
    """SIGTERM and SIGINT set ``stop`` (the caller then drains and exits 0)."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread
            pass


async def serve_until(app: web.Application, host: str, port: int, stop: asyncio.Event,
                      shutdown_timeout: float, name: str) -> None:
    """Serve ``app`` until ``stop`` is set, then stop accepting, let in-flight requests
    finish (up to ``shutdown_timeout``) and run the app's cleanup."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=shutdown_timeout,
                           handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("service.listening", service=name, host=host, port=port)
    try:
        await stop.wait()
    finally:
        log.info("service.stopping", service=name)
        await runner.cleanup()
        log.info("service.stopped", service=name)
