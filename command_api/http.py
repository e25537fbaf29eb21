"""From an HTTP request to a command run and back: metadata, idempotency, domain errors as
problem answers, and the ``X-Talk-Position`` header."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from prometheus_client import Counter

from command_api.context import EVENT_STORE
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
    request_fingerprint,
)
from events.envelope import Metadata
from events.postgres_store import append_on
from services.auth import Caller
from services.http.context import DATABASE
from services.http.middlewares import caller_of, request_id_of
from services.http.problems import Problem

POSITION_HEADER = "X-Talk-Position"

EVENTS_APPENDED = Counter("talk_events_appended_total", "Events appended by commands.", ["type"])


class _Replay(Exception):
    def __init__(self, stored: StoredResponse) -> None:
        self.stored = stored


def metadata_for(request: web.Request, caller: Caller) -> Metadata:
    return Metadata(
        customer_id=caller.customer_id,
        actor_type="agent",
        actor_id=caller.agent_id,
        request_id=request_id_of(request),
        correlation_id=request.headers.get("X-Correlation-ID") or request_id_of(request),
        causation_id=request.headers.get(IDEMPOTENCY_HEADER),
    )


def to_http(resp: CommandResponse) -> web.Response:
    return web.Response(status=resp.status, body=orjson.dumps(resp.body),
                        content_type="application/json",
                        headers={POSITION_HEADER: str(resp.position)})


def _count(decision: Decision) -> None:
    for event in decision.new_events:
        EVENTS_APPENDED.labels(event.event_type).inc()


async def execute(request: web.Request, decide: Callable[[], Awaitable[Decision]],
                  render: Render) -> web.Response:
    """Run a decided command; POSTs honour ``Idempotency-Key``."""
    caller = caller_of(request)
    metadata = metadata_for(request, caller)
    store = request.app[EVENT_STORE]
    key = request.headers.get(IDEMPOTENCY_HEADER) if request.method == "POST" else None
    if key is None:
        async def commit(decision, md, rnd):
            resp = await plain_commit(store, decision, md, rnd)
            _count(decision)
            return resp

        try:
            return to_http(await run_command(decide, commit, metadata, render))
        except DomainError as exc:
            raise _problem(exc) from None

    if not key or len(key) > MAX_KEY_LENGTH:
        raise Problem(400, f"{IDEMPOTENCY_HEADER} must be 1 to {MAX_KEY_LENGTH} characters",
                      errors=[{"field": IDEMPOTENCY_HEADER, "message": "invalid length"}])
    fingerprint = request_fingerprint(request.method, request.path, await request.read())
    db = request.app[DATABASE]

    async def commit_idempotent(decision, md, rnd):
        async with db.transaction("append_events_idempotent") as conn:
            prior = await claim_key(conn, caller.customer_id, caller.agent_id, key, fingerprint)
            if prior is not None:
                raise _Replay(prior)
            result = await append_on(conn, decision.appends, md) if decision.new_events else None
            resp = rnd(decision, result)
            await record_response(conn, caller.customer_id, caller.agent_id, key,
                                  resp.status, resp.body, resp.position)
        _count(decision)
        return resp

    try:
        existing = await _recorded(db, caller, key)
        if existing is not None:
            raise _Replay(existing)
        try:
            return to_http(await run_command(decide, commit_idempotent, metadata, render))
        except DomainError as exc:
            # A request with this key may have committed while we decided: replay it.
            existing = await _recorded(db, caller, key)
            if existing is not None:
                raise _Replay(existing) from None
            raise _problem(exc) from None
    except _Replay as replay:
        stored = replay.stored
        if stored.request_hash != fingerprint:
            raise Problem(422, f"this {IDEMPOTENCY_HEADER} was used with a different request") from None
        resp = to_http(CommandResponse(stored.status, stored.body, stored.position))
        resp.headers["Idempotent-Replayed"] = "true"
        return resp


async def _recorded(db, caller: Caller, key: str) -> StoredResponse | None:
    async with db.statement("idempotency_lookup") as conn:
        cur = await conn.execute(
            "SELECT request_hash, status, body, position FROM idempotency_keys"
            " WHERE customer_id = %s AND agent_id = %s AND key = %s AND status <> 0"
            " AND created_at >= now() - interval '24 hours'",
            (caller.customer_id, caller.agent_id, key),
        )
        row = await cur.fetchone()
    if row is None:
        return None
    return StoredResponse(row["request_hash"], row["status"], row["body"], row["position"])


def _problem(exc: DomainError) -> Problem:
    return Problem(exc.status, exc.detail, errors=exc.errors or None)
