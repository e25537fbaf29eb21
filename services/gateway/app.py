"""The gateway's aiohttp app: ``GET /v1.0/ws`` plus ``/livez``, ``/readyz``, ``/metrics``, and
its contract, ``GET /v1.0/asyncapi.json`` (no token needed).

Authentication is the shared middleware's: a missing or bad token is answered 401
(problem+json) before the upgrade. The app owns the feed's task (started on startup,
stopped on cleanup) and, on shutdown, closes every socket with 1001 before aiohttp waits
for the handlers to end.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import suppress

import structlog
from aiohttp import WSMsgType, web

from query_api.consistency import WATCHER, ProjectionWatcher
from query_api.membership import MembershipStore
from services.gateway.asyncapi import ASYNCAPI_PATH, serve_asyncapi
from services.gateway.connections import GOING_AWAY_CLOSE, TOO_MANY_SOCKETS_CLOSE, Connection
from services.gateway.ephemeral import EphemeralBus, InProcessBus, RabbitMQBus
from services.gateway.feed import Feed
from services.gateway.hub import Hub
from services.gateway.membership import Membership
from services.gateway.metrics import REFUSED_SOCKETS
from services.gateway.protocol import Session
from services.gateway.rabbitmq_feed import RabbitMQFeed
from services.gateway.tokens import ResumeTokens
from services.gateway.typing import TypingRelay
from services.http.app import create_base_app
from services.http.context import DATABASE, READ_DATABASE, database_ctx, read_database_ctx
from services.http.health import READINESS_CHECKS
from services.http.middlewares import WEBSOCKET_HANDSHAKE_HEADERS, caller_of, require_ascii
from services.settings import Settings
from services.tasks import cancel_and_wait

TOKEN_EXPIRED_CLOSE_CODE = 4001
EXPIRY_SWEEP_INTERVAL = 1.0  # seconds

log = structlog.get_logger("talk.gateway")

WS_PATH = "/v1.0/ws"
HUB = web.AppKey("gateway_hub", Hub)
MEMBERSHIP = web.AppKey("gateway_membership", Membership)
TYPING = web.AppKey("gateway_typing", TypingRelay)
HEARTBEAT = web.AppKey("gateway_heartbeat", float)
MAX_CLIENT_MESSAGE = 64 * 1024
MAX_CONCURRENT_REPLAYS = 64
CLOSE_HANDSHAKE_TIMEOUT = 2.0


def install_gateway(app: web.Application, settings: Settings, feed: Feed,
                    bus: EphemeralBus | None = None) -> Hub:
    """Add the WebSocket route, the hub and the feed's task to ``app`` (which must hold a
    database, see :func:`services.http.context.database_ctx`). ``bus`` carries typing
    signals between gateways: by default RabbitMQ's ``talk.ephemeral`` with
    ``TALK_AMQP_URL``, else in-process."""
    if bus is None:
        bus = RabbitMQBus(settings) if settings.amqp_url else InProcessBus()
    hub = Hub(feed, tokens=ResumeTokens(settings.require_jwt_secret()),
              send_buffer_bytes=settings.gateway_send_buffer_bytes,
              locate_timeout=settings.gateway_resume_timeout,
              max_replays=MAX_CONCURRENT_REPLAYS,
              max_sockets_per_agent=settings.gateway_max_sockets_per_agent)
    app[HUB] = hub
    app[TYPING] = TypingRelay(hub, bus)
    app[HEARTBEAT] = settings.gateway_heartbeat
    app[READINESS_CHECKS]["stream"] = feed.check
    app.router.add_get(WS_PATH, websocket_handler)
    app.router.add_get(ASYNCAPI_PATH, serve_asyncapi)
    app.cleanup_ctx.append(read_database_ctx(settings, "talk-gateway"))
    app.cleanup_ctx.append(_membership_ctx(settings))
    app.cleanup_ctx.append(_feed_ctx(hub))
    app.cleanup_ctx.append(_bus_ctx(app[TYPING]))
    app.cleanup_ctx.append(_expiry_ctx(hub))
    app.on_shutdown.append(_close_sockets)
    return hub


def create_gateway_app(settings: Settings, feed: Feed | None = None) -> web.Application:
    """The gateway as its own service; ``feed`` defaults to the RabbitMQ stream."""
    app = create_base_app(settings, "gateway")
    app.cleanup_ctx.append(database_ctx(settings, "talk-gateway"))
    install_gateway(app, settings, feed if feed is not None else RabbitMQFeed(settings))
    return app


def _membership_ctx(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    """The membership checks, waiting on the projector's notifications: the query API's
    watcher when it shares the app (``talk up``), else one of the gateway's own. They read
    ``TALK_READ_DATABASE_URL`` (a standby) when set, the primary's heads when in doubt."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        watcher = app.get(WATCHER)
        own = watcher is None
        if watcher is None:
            watcher = ProjectionWatcher(settings.require_database_url())
            await watcher.start()
        # the databases open in earlier cleanup_ctx
        store = MembershipStore(app[READ_DATABASE], primary=app[DATABASE])
        app[MEMBERSHIP] = Membership(store, watcher,
                                     settings.read_your_writes_timeout)
        try:
            yield
        finally:
            if own:
                await watcher.stop()

    return ctx


def _consumer_ctx(name: str, run: Callable[[Callable, asyncio.Event], Awaitable[None]],
                  handle: Callable) -> Callable[[web.Application], AsyncIterator[None]]:
    """Runs ``run(handle, stop)`` for the app's lifetime; on cleanup sets ``stop`` and waits
    (at most 10 s) for it to end."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(run(handle, stop), name=name)
        try:
            yield
        finally:
            stop.set()
            with suppress(asyncio.CancelledError, TimeoutError):
                await asyncio.wait_for(task, 10)

    return ctx


def _bus_ctx(relay: TypingRelay) -> Callable[[web.Application], AsyncIterator[None]]:
    return _consumer_ctx("gateway-ephemeral", relay.bus.run, relay.receive)


def _feed_ctx(hub: Hub) -> Callable[[web.Application], AsyncIterator[None]]:
    return _consumer_ctx("gateway-feed", hub.feed.run, hub.dispatch)


def _expiry_ctx(hub: Hub) -> Callable[[web.Application], AsyncIterator[None]]:
    """A socket lives no longer than its token: once a second, sockets whose token has
    expired are closed with TOKEN_EXPIRED_CLOSE_CODE; the client reconnects with a fresh
    token and its last resume token, and misses nothing. One sweep for all sockets rather
    than a timer each keeps an idle socket small."""

    async def sweep() -> None:
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_INTERVAL)
            hub.close_expired(time.time(), TOKEN_EXPIRED_CLOSE_CODE)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(sweep(), name="gateway-token-expiry")
        try:
            yield
        finally:
            await cancel_and_wait(task)

    return ctx


async def _close_sockets(app: web.Application) -> None:
    hub = app[HUB]
    if len(hub):
        log.info("gateway.closing_sockets", sockets=len(hub))
    await hub.close_all(GOING_AWAY_CLOSE, b"server shutdown")


async def websocket_handler(request: web.Request) -> web.StreamResponse:
    caller = caller_of(request)
    hub = request.app[HUB]
    ws = web.WebSocketResponse(heartbeat=request.app[HEARTBEAT], compress=False,
                               max_msg_size=MAX_CLIENT_MESSAGE, timeout=CLOSE_HANDSHAKE_TIMEOUT)
    require_ascii(request, WEBSOCKET_HANDSHAKE_HEADERS)  # 400, not aiohttp's failure on it
    await ws.prepare(request)
    # Sockets of one customer share its id string (an idle socket's memory counts).
    customer_id, agent_id = sys.intern(str(caller.customer_id)), str(caller.agent_id)
    if not hub.has_room_for(customer_id, agent_id):
        REFUSED_SOCKETS.inc()
        await ws.close(code=TOO_MANY_SOCKETS_CLOSE, message=(
            f"too many sockets for this agent (at most {hub.max_sockets_per_agent})").encode())
        return ws
    conn = Connection(ws, request.transport, customer_id, agent_id, hub.send_buffer_bytes)
    session = Session(hub, conn, request.app[MEMBERSHIP], request.app[TYPING],
                      caller.customer_id, caller.agent_id)
    hub.add(conn)
    conn.expires_at = caller.expires_at
    try:
        async for message in ws:
            if message.type is WSMsgType.TEXT:
                await session.handle(message.data)
            elif message.type is WSMsgType.BINARY:
                session.error("malformed_frame", "client messages are JSON text frames")
    finally:
        hub.remove(conn)
        conn.detach()
    return ws

