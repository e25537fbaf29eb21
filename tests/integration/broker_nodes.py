"""Stand-ins for the nodes of a RabbitMQ cluster, for the tests of several AMQP URLs.

There is one local broker, never stopped by a test: each "node" is a :class:`TcpProxy` in
front of it, so losing a node is cutting its proxy, and which node a client uses is which
proxy carries its connection. :func:`closed_port_url` is a node that refuses every
connection. :func:`close_broker_connection` closes one named client connection from the
broker's side (``rabbitmqctl close_connection``), nothing else.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from urllib.parse import urlsplit

from tests.integration.publishing.proxy import TcpProxy


@contextmanager
def closed_port_url(user: str = "guest", password: str = "guest") -> Iterator[str]:
    """An AMQP URL on a local port that refuses connections (bound, never listening)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield f"amqp://{user}:{password}@127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        sock.close()


@asynccontextmanager
async def node_proxies(amqp_url: str, count: int) -> AsyncIterator[tuple[list[TcpProxy], str]]:
    """``count`` proxies to the broker of ``amqp_url``, and the comma-separated URL list of
    them (same credentials), in order."""
    target = urlsplit(amqp_url)
    proxies = [await TcpProxy(target.hostname or "127.0.0.1", target.port or 5672).start()
               for _ in range(count)]
    try:
        urls = ",".join(p.url(target.username or "guest", target.password or "guest")
                        for p in proxies)
        yield proxies, urls
    finally:
        for p in proxies:
            await p.close()


async def _rabbitmqctl(*args: str) -> str:
    ctl = shutil.which("rabbitmqctl")
    if ctl is None:
        raise AssertionError("rabbitmqctl is not on PATH: this test closes a connection from "
                             "the broker's side with it (install rabbitmq-server's CLI)")
    process = await asyncio.create_subprocess_exec(
        ctl, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await process.communicate()
    assert process.returncode == 0, f"rabbitmqctl {' '.join(args)}: {err.decode()}"
    return out.decode()


async def broker_connections(connection_name: str) -> list[str]:
    """The broker's process ids of the open connections whose client called itself
    ``connection_name`` (the form ``close_connection`` takes)."""
    listed = await _rabbitmqctl("list_connections", "pid", "client_properties", "-q",
                                "--no-table-headers")
    wanted = f'{{"connection_name","{connection_name}"}}'
    return [line.split("\t", 1)[0] for line in listed.splitlines() if wanted in line]


async def close_broker_connection(connection_name: str) -> None:
    """Close, from the broker's side, the one connection named ``connection_name``."""
    names = await broker_connections(connection_name)
    assert len(names) == 1, f"connections named {connection_name}: {names}"
    await _rabbitmqctl("close_connection", names[0], "test: this node's connection is lost")
