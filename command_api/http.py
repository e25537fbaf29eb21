"""From an HTTP request to a command run and back: metadata, idempotency, domain errors as
problem answers, and the ``X-Talk-Position`` header."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import orjson
import structlog
from aiohttp import web
from prometheus_client import Counter

from command_api.context import EVENT_STORE, STREAM_LOCKS
from command_api.domain.errors import DomainError
from command_api.execution import CommandResponse, Decision, Render, plain_commit, run_command
from command_api.idempotency import (
    HEADER as IDEMPOTENCY_HEADER,
)
from command_api.idempotency import (
    MAX_KEY_LENGTH,
    StoredResponse,
    claim_key,
    record_response,
    recorded_response,
    request_fingerprint,
    well_formed_key,
)
from events.envelope import Checkpoint, Metadata
from events.position_token import format_position
from events.postgres_store import append_on
from events.store import EventStore
from services.auth import Caller
from services.db import DatabaseUnavailable, Rollback
from services.http.context import DATABASE
from services.http.middlewares import caller_of, correlation_id_of, request_id_of
from services.http.problems import Problem
from services.http.unavailable import outcome_unknown_problem

log = structlog.get_logger("talk.command_api")

POSITION_HEADER = "X-Talk-Position"
KEY_REUSED = "idempotency-key-reused"  # 422: the key was used with another request

EVENTS_APPENDED = Counter("talk_events_appended_total", "Events appended by commands.", ["type"])


class _Replay(Rollback):
    def __init__(self, stored: StoredResponse) -> None:
        self.stored = stored


def metadata_for(request: web.Request, caller: Caller) -> Metadata:
    return Metadata(
        customer_id=caller.customer_id,
        actor_type="agent",
        actor_id=caller.agent_id,
        request_id=request_id_of(request),
        correlation_id=correlation_id_of(request),
    )


def to_http(resp: CommandResponse) -> web.Response:
    return http_answer(resp.status, orjson.dumps(resp.body), resp.position)


def http_answer(status: int, body: bytes, position: Checkpoint) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/json",
                        headers={POSITION_HEADER: format_position(position)})


def _count(decision: Decision) -> None:
    for event in decision.new_events:
        EVENTS_APPENDED.labels(event.event_type).inc()


async def execute(request: web.Request, decide: Callable[[EventStore], Awaitable[Decision]],
                  render: Render, *, serialise_on: str | None = None) -> web.Response:
    """Run a decided command; POSTs honour ``Idempotency-Key``. ``serialise_on`` names the
    stream whose version the command builds on (commands of this process on it take turns)."""
    caller = caller_of(request)
    metadata = metadata_for(request, caller)
    store = request.app[EVENT_STORE]
    locks = request.app[STREAM_LOCKS]
    key = request.headers.get(IDEMPOTENCY_HEADER) if request.method == "POST" else None
    if key is None:
        async def commit(decision, md, rnd):
            with _outcome_unknown_answered(idempotency_key=False):
                resp = await plain_commit(store, decision, md, rnd)
            _count(decision)
            return resp

        try:
            async with locks.hold(serialise_on):
                return to_http(await run_command(decide, commit, metadata, render, store))
        except DomainError as exc:
            raise domain_problem(exc) from None

    if not well_formed_key(key):
        raise Problem(400, f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_KEY_LENGTH} visible ASCII"
                           " characters", errors=[{"field": IDEMPOTENCY_HEADER,
                                                   "message": "malformed"}])
    fingerprint = request_fingerprint(request.method, request.path, await request.read())
    db = request.app[DATABASE]

    async def commit_idempotent(decision, md, rnd):
        with _outcome_unknown_answered(idempotency_key=True):
            return await _commit_idempotent(decision, md, rnd)

    async def _commit_idempotent(decision, md, rnd):
        async with db.transaction("append_events_idempotent") as conn:
            prior = await claim_key(conn, caller.customer_id, caller.agent_id, key, fingerprint)
            if prior is not None:
                raise _Replay(prior)
            result = await append_on(conn, decision.appends, md) if decision.new_events else None
            resp = rnd(decision, result)
            body = orjson.dumps(resp.body)
            await record_response(conn, caller.customer_id, caller.agent_id, key,
                                  resp.status, body, resp.position)
        if result is not None:
            store.appended(decision.appends, result, md)  # committed: the cache moves on
            store.committed(decision.appends)
        _count(decision)
        return StoredResponse(fingerprint, resp.status, body, resp.position)

    try:
        existing = await _recorded(db, caller, key)
        if existing is not None:
            raise _Replay(existing)
        try:
            async with locks.hold(serialise_on):
                first = await run_command(decide, commit_idempotent, metadata, render, store)
            return http_answer(first.status, first.body, first.position)
        except DomainError as exc:
            # A request with this key may have committed while we decided: replay it.
            existing = await _recorded(db, caller, key)
            if existing is not None:
                raise _Replay(existing) from None
            raise domain_problem(exc) from None
    except _Replay as replay:
        stored = replay.stored
        if stored.request_hash != fingerprint:
            raise Problem(422, f"this {IDEMPOTENCY_HEADER} was used with a different request",
                          type_=KEY_REUSED) from None
        resp = http_answer(stored.status, stored.body, stored.position)
        resp.headers["Idempotent-Replayed"] = "true"
        return resp


@contextmanager
def _outcome_unknown_answered(*, idempotency_key: bool) -> Iterator[None]:
    """A commit cut off by a lost connection answers 503 saying the write may be stored."""
    try:
        yield
    except DatabaseUnavailable as exc:
        if not exc.outcome_unknown:
            raise
        log.warning("command.outcome_unknown", error=str(exc), idempotency_key=idempotency_key)
        raise outcome_unknown_problem(idempotency_key=idempotency_key) from exc


async def _recorded(db, caller: Caller, key: str) -> StoredResponse | None:
    async with db.statement("idempotency_lookup") as conn:
        return await recorded_response(conn, caller.customer_id, caller.agent_id, key)


def domain_problem(exc: DomainError) -> Problem:
    """The problem answer of a domain refusal: its status, and its rule as the ``type``."""
    return Problem(exc.status, exc.detail, type_=exc.problem, errors=exc.errors or None)
