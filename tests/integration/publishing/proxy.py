"""A TCP proxy in front of RabbitMQ (or any TCP server) that a test controls: ``cut()`` drops
every connection through it and refuses new ones (the broker is unreachable for whoever uses
it) until ``restore()``; ``hold_replies()`` stops forwarding what the broker sends (publishes
still reach the broker, their confirms do not come back). Only connections made through the
proxy are affected, so tests running at the same time against the same broker are not.

``TcpProxy.round_robin(targets)`` puts several servers behind one port, as a load balancer
would: each new connection goes to the next target in turn (``served`` counts them)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.targets = [(target_host, target_port)]
        self.served = [0]  # connections handed to each target, in the order of ``targets``
        self._turns = 0
        self.accepting = True
        self.replies = asyncio.Event()  # set: broker -> client bytes flow
        self.replies.set()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: dict[asyncio.Task, tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = {}

    @classmethod
    def round_robin(cls, targets: Sequence[tuple[str, int]]) -> TcpProxy:
        """One port in front of all ``targets``, new connections alternating between them."""
        proxy = cls(*targets[0])
        proxy.targets = list(targets)
        proxy.served = [0] * len(targets)
        return proxy

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def connections(self) -> int:
        """Connections open through the proxy now."""
        return len(self._links)

    def url(self, user: str = "guest", password: str = "guest") -> str:
        return f"amqp://{user}:{password}@127.0.0.1:{self.port}/"

    def cut(self) -> None:
        """Drop every open connection and refuse new ones."""
        self.accepting = False
        for task, (client, broker) in list(self._links.items()):
            client.transport.abort()
            broker.transport.abort()
            task.cancel()
        self._links.clear()

    def restore(self) -> None:
        self.accepting = True
        self.replies.set()

    def hold_replies(self) -> None:
        self.replies.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if not self.accepting:
            client_w.transport.abort()
            return
        turn = self._turns % len(self.targets)
        self._turns += 1
        self.served[turn] += 1
        try:
            broker_r, broker_w = await asyncio.open_connection(*self.targets[turn])
        except OSError:
            client_w.transport.abort()
            return
        task = asyncio.current_task()
        assert task is not None
        self._links[task] = (client_w, broker_w)
        try:
            await asyncio.gather(self._pump(client_r, broker_w, None),
                                 self._pump(broker_r, client_w, self.replies))
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._links.pop(task, None)
            client_w.transport.abort()
            broker_w.transport.abort()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    gate: asyncio.Event | None) -> None:
        while data := await reader.read(65536):
            if gate is not None:
                await gate.wait()
            writer.write(data)
            await writer.drain()
        writer.transport.abort()
