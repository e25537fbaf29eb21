"""Slow clients, heartbeats and shutdown: a client that does not read is closed with 4008
when its buffer overflows while the others get everything; pings go out; a shutdown closes
every socket with 1001."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from uuid import uuid4

import orjson
from aiohttp import WSMsgType
from prometheus_client import REGISTRY

from services.auth import mint_token
from services.gateway.connections import SLOW_CLIENT_CLOSE
from tests.integration.gateway.support import event_frame, wait_closed, without_token
from tests.support import TEST_SECRET, wait_until


class RawSocket:
    """A WebSocket client written by hand so that it can stop reading (small receive buffer)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, base_url: str, token: str) -> RawSocket:
        host, port = base_url.removeprefix("http://").split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /v1.0/ws?token={token} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        return cls(reader, writer)

    def send_json(self, payload: dict) -> None:
        data, mask = orjson.dumps(payload), os.urandom(4)
        assert len(data) < 126
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.writer.write(bytes([0x81, 0x80 | len(data)]) + mask + masked)

    async def read_frame(self) -> tuple[int, bytes]:
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(await self.reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await self.reader.readexactly(8), "big")
        return first & 0x0F, await self.reader.readexactly(length)


def _dropped() -> float:
    return REGISTRY.get_sample_value("talk_gateway_dropped_slow_clients_total") or 0.0


async def test_slow_client_is_closed_with_4008_and_others_get_everything(
        gateway_settings, start_gateway, publisher):
    gateway = await start_gateway(gateway_settings)  # 256 KiB per socket
    customer, slow_agent, fast_agent = uuid4(), uuid4(), uuid4()
    slow = await RawSocket.connect(gateway.base_url,
                                   mint_token(TEST_SECRET, customer, slow_agent))
    slow.send_json({"type": "subscribe", "topics": [f"agent:{slow_agent}"]})
    opcode, payload = await slow.read_frame()
    assert orjson.loads(payload)["type"] == "subscribed"
    fast = await gateway.connect(customer, fast_agent)
    await fast.subscribe(f"agent:{fast_agent}")
    dropped_before = _dropped()

    # ~10 MB: more than the kernel buffers on both ends of the slow socket hold (~4 MB).
    reading = asyncio.create_task(fast.frames(600))  # the fast client keeps reading
    bodies = [await publisher.publish("message_created", customer, uuid4(),
                                      [slow_agent, fast_agent], {"text": "x" * 16_000, "n": i})
              for i in range(600)]
    got = [without_token(f) for f in await reading]
    assert got == [event_frame(b, f"agent:{fast_agent}") for b in bodies]

    await wait_until(lambda: _async(_dropped() == dropped_before + 1), what="the drop")

    # The slow client reads its backlog at last (within the closing handshake's 5 s): it
    # ends with the close frame, code 4008.
    async def close_code() -> int:
        while True:
            opcode, payload = await slow.read_frame()
            if opcode == 0x8:
                return int.from_bytes(payload[:2], "big")

    assert await asyncio.wait_for(close_code(), 30) == SLOW_CLIENT_CLOSE
    slow.writer.close()
    await wait_until(lambda: _async(len(gateway.hub) == 1), what="the slow socket to go")
    # The fast client was not slowed: it is still live.
    after = await publisher.publish("message_updated", customer, uuid4(), [fast_agent])
    assert without_token(await fast.frame()) == event_frame(after, f"agent:{fast_agent}")


async def _async(value):
    return value


async def test_heartbeat_pings_go_out(gateway_settings, start_gateway):
    gateway = await start_gateway(gateway_settings.model_copy(update={"gateway_heartbeat": 0.2}))
    client = await gateway.connect(uuid4(), uuid4(), autoping=False)
    msg = await client.ws.receive(timeout=5)
    assert msg.type is WSMsgType.PING


async def test_shutdown_closes_sockets_with_1001(gateway, publisher):
    customer, a, b = uuid4(), uuid4(), uuid4()
    client_a = await gateway.connect(customer, a)
    await client_a.subscribe(f"agent:{a}")
    client_b = await gateway.connect(customer, b)
    await wait_until(lambda: _async(len(gateway.hub) == 2), what="both sockets")
    stopping = asyncio.create_task(gateway.stop())
    assert await wait_closed(client_a.ws) == 1001
    assert await wait_closed(client_b.ws) == 1001
    await stopping
    assert len(gateway.hub) == 0


async def test_closed_client_leaves_the_hub(gateway):
    client = await gateway.connect(uuid4(), uuid4())
    await wait_until(lambda: _async(len(gateway.hub) == 1), what="the socket")
    await client.close()
    await wait_until(lambda: _async(len(gateway.hub) == 0), what="the socket to go")
