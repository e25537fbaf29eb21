"""Raw HTTP for the bad-input tests: bytes no client library would send (a header that is
not UTF-8, a malformed request line), and a service served as it is in production
(``serve_until``, so aiohttp's own protocol-level answers are the ones tested)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from services.http.app import serve_until

READ_TIMEOUT = 10.0


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()

    def json(self) -> Any:
        return orjson.loads(self.body)


async def send_raw(port: int, request: bytes) -> RawAnswer:
    """Write ``request`` as given and read one answer (its head, then Content-Length bytes
    or up to the end of the connection; nothing after a 101), then close the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if status == 101:  # switched protocols (a WebSocket): no HTTP body follows
            body = b""
        elif "content-length" in headers:
            body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])),
                                          READ_TIMEOUT)
        else:
            body = await asyncio.wait_for(reader.read(), READ_TIMEOUT)
        return RawAnswer(status, headers, body)
    finally:
        writer.close()


def request_bytes(method: str, target: str, headers: dict[str, bytes | str],
                  body: bytes = b"") -> bytes:
    """An HTTP/1.1 request with ``headers`` as given (bytes values go out untouched)."""
    out = [f"{method} {target} HTTP/1.1".encode(), b"Host: talk.test", b"Connection: close"]
    for name, value in headers.items():
        out.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode()))
    if body or method in ("POST", "PUT"):
        out += [b"Content-Type: application/json", f"Content-Length: {len(body)}".encode()]
    return b"\r\n".join(out) + b"\r\n\r\n" + body


@asynccontextmanager
async def served(app: web.Application) -> AsyncIterator[int]:
    """``app`` served by ``serve_until`` on a free port of 127.0.0.1; yields the port."""
    stop = asyncio.Event()
    ready: asyncio.Future[list[str]] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(serve_until(app, "127.0.0.1", 0, stop, 5.0, "test",
                                           on_ready=ready.set_result))
    try:
        done, _ = await asyncio.wait({task, ready}, timeout=30,
                                     return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()  # raises what stopped it
        assert ready.done(), "the service did not listen within 30 s"
        yield int(ready.result()[0].rsplit(":", 1)[1])
    finally:
        stop.set()
        await task
