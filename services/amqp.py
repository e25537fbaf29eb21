"""RabbitMQ: opening a connection, declaring what Talk publishes to, and staying connected.

The topology (DESIGN, "Published stream"): the durable topic exchange ``settings.exchange``
and the durable stream queue ``settings.stream_queue`` (``x-queue-type: stream``, retention
``x-max-age: settings.stream_max_age``) bound to it with ``#``, so it keeps the history
that gateways resume from. Declaring is idempotent; whoever connects first creates it.

:func:`run_connected` is the reconnect loop: a plain connection per attempt, and on any
broker failure log, back off (0.2 s doubling to 5 s), open a fresh connection and start
the session again. A robust (self-restoring) connection is deliberately not used for
publishing: it lets publishes that were queued before an outage go out on the restored
connection after the ones that failed, which would break the per-talk order; a fresh
session restarts from the last confirmed point instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import aio_pika
import aiormq
import structlog
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange

from services.retry import Backoff, pause
from services.settings import Settings

log = structlog.get_logger("talk.amqp")

# What a broker outage looks like from the client: closed connections and channels, refused
# or timed-out connects, unconfirmed publishes.
AMQP_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    aiormq.exceptions.ChannelInvalidStateError,
    ConnectionError,
    OSError,
    TimeoutError,
)

Session = Callable[[AbstractConnection], Awaitable[None]]


def require_amqp_url(settings: Settings) -> str:
    if not settings.amqp_url:
        raise SystemExit("TALK_AMQP_URL is not set (e.g. amqp://guest:guest@127.0.0.1:5672/)")
    return settings.amqp_url


async def open_connection(settings: Settings, name: str) -> AbstractConnection:
    """A plain connection named ``name`` (shown by ``rabbitmqctl list_connections``)."""
    return await aio_pika.connect(
        require_amqp_url(settings),
        timeout=settings.amqp_timeout,
        client_properties={"connection_name": name},
    )


async def declare_topology(channel: AbstractChannel, settings: Settings) -> AbstractExchange:
    """Declare the exchange and the stream queue bound to it; returns the exchange."""
    exchange = await channel.declare_exchange(
        settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(
        settings.stream_queue,
        durable=True,
        arguments={"x-queue-type": "stream", "x-max-age": settings.stream_max_age},
    )
    await queue.bind(exchange, routing_key="#")
    return exchange


async def run_connected(settings: Settings, name: str, stop: asyncio.Event, session: Session,
                        *, on_failure: Callable[[BaseException], Awaitable[None]] | None = None,
                        ) -> None:
    """Run ``session(connection)`` until ``stop`` is set, reconnecting after broker failures.

    ``session`` returns when ``stop`` is set; a broker error (:data:`AMQP_ERRORS`) raised by
    it or by the connect is logged, passed to ``on_failure`` and retried after a back-off.
    Any other error propagates.
    """
    backoff = Backoff(0.2, 5.0)
    while not stop.is_set():
        try:
            connection = await open_connection(settings, name)
        except AMQP_ERRORS as exc:
            delay = backoff.next()
            await _failed(name, "amqp.connect_failed", exc, delay, on_failure)
        else:
            try:
                log.info("amqp.connected", name=name)
                backoff.reset()
                await session(connection)
                return
            except AMQP_ERRORS as exc:
                delay = backoff.next()
                await _failed(name, "amqp.connection_lost", exc, delay, on_failure)
            finally:
                await _close_quietly(connection)
        await pause(delay, stop)


async def _failed(name: str, what: str, exc: BaseException, retry_in: float,
                  on_failure: Callable[[BaseException], Awaitable[None]] | None) -> None:
    log.warning(what, name=name, error=repr(exc), retry_in=retry_in)
    if on_failure is not None:
        await on_failure(exc)


async def _close_quietly(connection: AbstractConnection) -> None:
    try:
        await asyncio.wait_for(connection.close(), 5)
    except Exception as exc:  # closing a connection that already failed: nothing to save
        log.debug("amqp.close_failed", error=repr(exc))

