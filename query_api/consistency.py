"""Read-your-writes on request: ``X-Talk-Min-Position`` waits until the projection has
applied every event up to the place in the global order it names (every command answer
carries its ``X-Talk-Position``; events/position_token.py). A client may send the greatest
it holds, or several comma-separated (the greatest is waited for).

Reads may come from a hot standby (``TALK_READ_DATABASE_URL``): the projection's checkpoint
row replicates with the read tables, so "reached" is asked where the read will be made (one
statement in the common case). "Beyond the store's head" (a bare position's event, too) is
judged on the primary, and only when the read side has not reached the value: a value just
answered by the primary must not be refused 400 because a standby lags; it is waited for,
and 503 with ``Retry-After`` if the standby has not replayed it in time (never stale data).

The projector NOTIFYs ``talk_projected`` after each batch, on the primary (a standby cannot
LISTEN); waiters are woken by that and re-check, with a short poll as a fallback in case a
notification is missed, and as the way to see a standby's replay catch up.
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from events.envelope import Checkpoint
from events.position_token import BarePosition, format_position, impossible, parse_position
from projector.wakeup import Listener
from query_api.context import PRIMARY_STORE, READ_STORE
from query_api.read_store import ReadStore
from services.http.paths import path_uuid
from services.http.problems import Problem

HEADER = "X-Talk-Min-Position"
CHANNEL = "talk_projected"
FALLBACK_POLL = 0.05
STANDBY_POLL = 0.01  # a standby replays the batch shortly after the primary's notification


class ProjectionWatcher:
    """Wakes waiters on the projector's notifications (``database_url``: the primary), and
    every ``poll`` seconds besides (default ``4 * FALLBACK_POLL``)."""

    def __init__(self, database_url: str, *, poll: float | None = None) -> None:
        self.poll = poll or FALLBACK_POLL * 4
        self._listener = Listener(database_url, CHANNEL)
        self._changed = asyncio.Event()  # replaced by a fresh one at each notification

    async def start(self) -> None:
        self._listener.subscribe(self)
        await self._listener.__aenter__()

    async def stop(self) -> None:
        await self._listener.__aexit__(None, None, None)

    def notified(self, payload: str) -> None:
        """A batch was committed: wake every waiter (the Listener calls this)."""
        self.poke()

    def poke(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait_changed(self, timeout: float) -> None:
        """Until the projector's next batch is committed, at most ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except TimeoutError:
            pass

    async def wait_for(self, store: ReadStore, target: Checkpoint, timeout: float) -> bool:
        """Whether the projection reached ``target`` within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if await store.projection_reached(target):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await self.wait_changed(min(left, self.poll))


WATCHER = web.AppKey("projection_watcher", ProjectionWatcher)
TIMEOUT = web.AppKey("min_position_timeout", float)


def with_min_position(handler):
    """Wrap a GET handler: honour ``X-Talk-Min-Position`` before answering.

    The order of the answers: authentication (the middleware), then a malformed id in the
    path (404); then a value that cannot be honoured (malformed, or beyond the store's head)
    is refused with 400 at once, unless the route's own checks refuse the request first
    (another customer's talk is 404 whatever the header says); otherwise the read waits
    for the projection, then the handler answers."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        values = request.headers.getall(HEADER, None)
        if values is None:
            return await handler(request)
        for name in request.match_info:
            if name.endswith("_id"):
                path_uuid(request, name)
        store, primary = request.app[READ_STORE], request.app[PRIMARY_STORE]
        try:
            target = await _target(primary, ",".join(values))
            if target is not None and not await store.projection_reached(target):
                if not await primary.history_reaches(target):
                    raise _beyond_head(format_position(target))
                await _wait_for(request, target)
        except _Refused as refused:
            await handler(request)  # its refusal (a 4xx) comes first; its answer is dropped
            raise refused.problem from None
        return await handler(request)

    wrapped.__name__ = getattr(handler, "__name__", "handler")
    wrapped.__doc__ = handler.__doc__
    return wrapped


MAX_VALUES = 32  # positions in one header


class _Refused(Exception):
    def __init__(self, problem: Problem) -> None:
        self.problem = problem


def _malformed(detail: str) -> _Refused:
    return _Refused(Problem(400, f"{HEADER} {detail}",
                            errors=[{"field": HEADER, "message": "malformed"}]))


def _beyond_head(value: str) -> _Refused:
    return _Refused(Problem(400, f"{HEADER} {value} is beyond the event store's head: no "
                                 "command answered it",
                            errors=[{"field": HEADER, "message": "beyond the head"}]))


async def _target(primary: ReadStore, raw: str) -> Checkpoint | None:
    """The greatest place in the global order the header names (None: nothing to wait for).

    Each value is an ``X-Talk-Position`` token, or a bare position (the event at it,
    looked up on the primary; no committed event there is 400, as it is beyond the head or
    no command answered it)."""
    parts = raw.split(",")
    if len(parts) > MAX_VALUES:
        raise _malformed(f"holds at most {MAX_VALUES} comma-separated positions")
    target: Checkpoint | None = None
    for part in parts:
        try:
            at = parse_position(part)
        except ValueError:
            raise _malformed("must be X-Talk-Position values (digits), comma-separated") from None
        if impossible(at):
            raise _beyond_head(part.strip())
        if isinstance(at, BarePosition):
            if at.position == 0:
                continue
            found = await primary.event_at(at.position)
            if found is None:
                raise _beyond_head(part.strip())
            at = found
        if at != Checkpoint() and (target is None or at > target):
            target = at
    return target


async def _wait_for(request: web.Request, target: Checkpoint) -> None:
    app = request.app
    if not await app[WATCHER].wait_for(app[READ_STORE], target, app[TIMEOUT]):
        raise Problem(503, f"the read model has not reached {HEADER} "
                           f"{format_position(target)} yet", headers={"Retry-After": "1"})
