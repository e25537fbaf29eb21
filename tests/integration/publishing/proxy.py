"""A TCP proxy in front of RabbitMQ that a test controls: ``cut()`` drops every connection
through it and refuses new ones (the broker is unreachable for whoever uses it) until
``restore()``; ``hold_replies()`` stops forwarding what the broker sends (publishes still
reach the broker, their confirms do not come back). Only connections made through the proxy
are affected, so tests running at the same time against the same broker are not."""

from __future__ import annotations

import asyncio


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.accepting = True
        self.replies = asyncio.Event()  # set: broker -> client bytes flow
        self.replies.set()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: dict[asyncio.Task, tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = {}

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
        try:
            broker_r, broker_w = await asyncio.open_connection(*self.target)
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
