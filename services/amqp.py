"""RabbitMQ: opening a connection, declaring what Talk publishes to, and staying connected.

The topology (DESIGN, "Published stream"): the durable topic exchange ``settings.exchange``
and the durable stream queue ``settings.stream_queue`` (``x-queue-type: stream``, retention
``x-max-age: settings.stream_max_age``, replicas ``x-initial-cluster-size:
settings.stream_initial_cluster_size`` when set) bound to it with ``#``, so it keeps the
history that gateways resume from. Whoever connects first creates it
(:func:`ensure_topology`); an existing queue is used as it is, since RabbitMQ refuses a
redeclaration whose arguments differ (PRECONDITION_FAILED) and a stream's replicas are
changed with ``rabbitmq-streams add_replica``, not by redeclaring.

The broker may be a cluster: ``TALK_AMQP_URL`` is one URL or several separated by commas,
one per node (:func:`amqp_urls`). :class:`BrokerNodes` connects to the first node that
answers and, after a loss, starts from the node after the lost one, round-robin.

:func:`run_connected` is the reconnect loop: a plain connection per attempt, and on any
broker failure log, back off (0.2 s doubling to 5 s) once every node has been tried, open a
fresh connection and start the session again. A robust (self-restoring) connection is deliberately not used for
publishing: it lets publishes that were queued before an outage go out on the restored
connection after the ones that failed, which would break the per-talk order; a fresh
session restarts from the last confirmed point instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

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
        raise SystemExit("TALK_AMQP_URL is not set (e.g. amqp://guest:guest@127.0.0.1:5672/, "
                         "or one URL per node of a cluster, separated by commas)")
    return settings.amqp_url


def amqp_urls(settings: Settings) -> list[str]:
    """The broker's nodes, in the order of ``TALK_AMQP_URL`` (comma-separated)."""
    return split_amqp_urls(require_amqp_url(settings))


def split_amqp_urls(value: str) -> list[str]:
    """``"amqp://a/, amqp://b/"`` -> ``["amqp://a/", "amqp://b/"]`` (empty entries dropped;
    a comma inside a password is written ``%2C``)."""
    return [part.strip() for part in value.split(",") if part.strip()]


def describe_node(url: str) -> str:
    """``host:port`` of a node's URL, for logs (never the credentials)."""
    parsed = urlsplit(url)
    default_port = 5671 if parsed.scheme == "amqps" else 5672
    return f"{parsed.hostname}:{parsed.port or default_port}"


class BrokerNodes:
    """The nodes of ``TALK_AMQP_URL``, taken in turn by one client.

    :meth:`connect` tries each node once: the first time from the first URL, afterwards from
    the node after the one of the previous connection, so a client whose node was lost moves
    to a surviving one, and the lost node is tried last. It raises the last failure when no
    node answers; the caller backs off and calls again.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.urls = amqp_urls(settings)
        self.current: str | None = None  # host:port of the latest connection
        self._next = 0

    async def connect(self, name: str) -> AbstractConnection:
        """A plain connection named ``name`` (shown by ``rabbitmqctl list_connections``)."""
        failure: BaseException | None = None
        for step in range(len(self.urls)):
            index = (self._next + step) % len(self.urls)
            url = self.urls[index]
            try:
                connection = await aio_pika.connect(
                    url, timeout=self.settings.amqp_timeout,
                    client_properties={"connection_name": name})
            except AMQP_ERRORS as exc:
                if len(self.urls) > 1:
                    log.info("amqp.node_unreachable", name=name, node=describe_node(url),
                             error=repr(exc))
                failure = exc
                continue
            self._next = (index + 1) % len(self.urls)
            self.current = describe_node(url)
            return connection
        assert failure is not None
        raise failure


async def open_connection(settings: Settings, name: str) -> AbstractConnection:
    """A plain connection named ``name`` to the first node of ``TALK_AMQP_URL`` that answers
    (a client that reconnects keeps a :class:`BrokerNodes` instead, to move on round-robin)."""
    return await BrokerNodes(settings).connect(name)


def stream_arguments(settings: Settings) -> dict[str, object]:
    """The stream queue's arguments, as it is created."""
    arguments: dict[str, object] = {"x-queue-type": "stream",
                                    "x-max-age": settings.stream_max_age}
    if settings.stream_initial_cluster_size is not None:
        arguments["x-initial-cluster-size"] = settings.stream_initial_cluster_size
    return arguments


async def declare_topology(channel: AbstractChannel, settings: Settings) -> AbstractExchange:
    """Declare the exchange and the stream queue bound to it; returns the exchange. On an
    existing queue declared with other arguments the broker closes ``channel``
    (PRECONDITION_FAILED): services use :func:`ensure_topology`."""
    exchange = await declare_exchange(channel, settings)
    queue = await channel.declare_queue(
        settings.stream_queue, durable=True, arguments=stream_arguments(settings))
    await queue.bind(exchange, routing_key="#")
    return exchange


async def declare_exchange(channel: AbstractChannel, settings: Settings) -> AbstractExchange:
    """The exchange Talk publishes to, on ``channel`` (declaring it is idempotent)."""
    return await channel.declare_exchange(
        settings.exchange, aio_pika.ExchangeType.TOPIC, durable=True)


async def ensure_topology(connection: AbstractConnection, settings: Settings) -> None:
    """Use the stream queue if it exists, whatever its arguments (declaring the exchange and
    the binding again, both idempotent); declare exchange, queue and binding if not. Each
    step on a channel of its own."""
    channel = await connection.channel()
    try:
        queue = await channel.declare_queue(settings.stream_queue, passive=True)
        await queue.bind(await declare_exchange(channel, settings), routing_key="#")
        return
    except aio_pika.exceptions.ChannelNotFoundEntity:
        pass  # the broker closed that channel
    finally:
        if not channel.is_closed:
            await channel.close()
    async with connection.channel() as channel:
        await declare_topology(channel, settings)
    log.info("amqp.stream_declared", exchange=settings.exchange, queue=settings.stream_queue,
             arguments=stream_arguments(settings))


async def run_connected(settings: Settings, name: str, stop: asyncio.Event, session: Session,
                        *, on_failure: Callable[[BaseException], Awaitable[None]] | None = None,
                        ) -> None:
    """Run ``session(connection)`` until ``stop`` is set, reconnecting after broker failures.

    Each connection goes to the next node of ``TALK_AMQP_URL`` that answers
    (:class:`BrokerNodes`). ``session`` returns when ``stop`` is set; a broker error
    (:data:`AMQP_ERRORS`) raised by it or by the connect is logged, passed to ``on_failure``
    and retried after a back-off.
    Any other error propagates.
    """
    backoff = Backoff(0.2, 5.0)
    nodes = BrokerNodes(settings)
    while not stop.is_set():
        try:
            connection = await nodes.connect(name)
        except AMQP_ERRORS as exc:
            delay = backoff.next()
            await _failed(name, "amqp.connect_failed", exc, delay, on_failure)
        else:
            try:
                log.info("amqp.connected", name=name, node=nodes.current)
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

