"""Read-your-writes on request: ``X-Talk-Min-Position`` waits until the projection has
applied the event at that position (every command answer carries ``X-Talk-Position``).

The projector NOTIFYs ``talk_projected`` after each batch; waiters are woken by that and
re-check, with a short poll as a fallback in case a notification is missed.
"""

from __future__ import annotations

import asyncio
import time

import psycopg
import structlog
from aiohttp import web

from query_api.context import READ_STORE
from query_api.read_store import ReadStore
from services.http.problems import Problem
from services.tasks import cancel_and_wait

log = structlog.get_logger("talk.query")

HEADER = "X-Talk-Min-Position"
CHANNEL = "talk_projected"
FALLBACK_POLL = 0.05


class ProjectionWatcher:
    def __init__(self, database_url: str) -> None:
        self._url = database_url
        self._changed = asyncio.Condition()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="projection-watcher")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self._url, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    async for _ in conn.notifies():
                        async with self._changed:
                            self._changed.notify_all()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("projection_watcher.listen_failed", error=str(exc))
                await asyncio.sleep(1.0)

    async def wait_for(self, store: ReadStore, position: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if await store.projection_reached(position):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            async with self._changed:
                try:
                    await asyncio.wait_for(self._changed.wait(), min(left, FALLBACK_POLL * 4))
                except TimeoutError:
                    pass


WATCHER = web.AppKey("projection_watcher", ProjectionWatcher)
TIMEOUT = web.AppKey("min_position_timeout", float)


def with_min_position(handler):
    """Wrap a GET handler: honour ``X-Talk-Min-Position`` before answering."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        raw = request.headers.get(HEADER)
        if raw is not None:
            await _wait_for_header(request, raw)
        return await handler(request)

    wrapped.__name__ = getattr(handler, "__name__", "handler")
    wrapped.__doc__ = handler.__doc__
    return wrapped


async def _wait_for_header(request: web.Request, raw: str) -> None:
    try:
        position = int(raw)
        if position < 0:
            raise ValueError
    except ValueError:
        raise Problem(400, f"{HEADER} must be a non-negative integer",
                      errors=[{"field": HEADER, "message": "not a position"}]) from None
    if position == 0:
        return
    app = request.app
    if not await app[WATCHER].wait_for(app[READ_STORE], position, app[TIMEOUT]):
        raise Problem(503, f"the read model has not reached position {position} yet",
                      headers={"Retry-After": "1"})
