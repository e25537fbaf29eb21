"""The base every aiohttp service is built on, and how it is served."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import structlog
from aiohttp import web

from services.http.health import add_health_routes
from services.http.middlewares import make_auth_middleware, make_request_middleware
from services.http.server import ProblemAppRunner
from services.settings import Settings

log = structlog.get_logger("talk.http")

MAX_BODY = 1024 * 1024  # 1 MiB; larger bodies are answered 413
CLEANUP_SHARE = 0.2  # of the shutdown timeout, kept for closing pools after the requests


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
                      shutdown_timeout: float, name: str,
                      on_ready: Callable[[list[str]], None] | None = None) -> None:
    """Serve ``app`` until ``stop`` is set, then drain within ``shutdown_timeout``:

    1. stop accepting (the listening socket closes) and close idle keep-alive connections;
    2. run the app's ``on_shutdown`` (WebSockets are closed there with 1001 going away);
    3. let in-flight requests finish, for most of the timeout (what is still running after
       that is cancelled);
    4. run the app's cleanup (pools and listeners close) in what is left.

    ``on_ready`` is called with the bound URLs once the socket listens (``port`` 0 binds a
    free port)."""
    # No aiohttp access log (the request middleware logs each request, path without its
    # query); aiohttp's own 400s are problem+json, logged without the request line.
    runner = ProblemAppRunner(app, access_log=None, handle_signals=False,
                              shutdown_timeout=shutdown_timeout * (1 - CLEANUP_SHARE))
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    urls = [f"http://{_host_port(addr)}" for addr in runner.addresses]
    log.info("service.listening", service=name, host=host, port=port, urls=urls)
    if on_ready is not None:
        on_ready(urls)
    try:
        await stop.wait()
    finally:
        log.info("service.stopping", service=name, shutdown_timeout=shutdown_timeout)
        started = time.monotonic()
        try:
            await asyncio.wait_for(runner.cleanup(), shutdown_timeout)
        except TimeoutError:
            log.warning("service.shutdown_timed_out", service=name, shutdown_timeout=shutdown_timeout)
        log.info("service.stopped", service=name, seconds=round(time.monotonic() - started, 3))


def _host_port(address: object) -> str:
    host, port = address[0], address[1]  # type: ignore[index]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
