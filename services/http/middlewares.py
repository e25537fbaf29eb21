"""Middlewares shared by every HTTP service: request id + logging, problem answers,
metrics, and JWT authentication."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web
from prometheus_client import Gauge, Histogram

from services.auth import AuthError, Caller, TokenVerifier, token_from_request
from services.http.problems import Problem, problem_response
from services.http.unavailable import outage_problem

log = structlog.get_logger("talk.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REQUEST_ID_HEADER = "X-Request-ID"
CORRELATION_ID_HEADER = "X-Correlation-ID"  # same form as X-Request-ID; kept in event metadata
BODY_UNREADABLE = "the request body cannot be read (malformed Content-Encoding or framing)"
_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

HTTP_SECONDS = Histogram(
    "talk_http_request_seconds",
    "HTTP request latency by service, route, method and status.",
    ["service", "route", "method", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

HTTP_IN_FLIGHT = Gauge(
    "talk_http_requests_in_flight",
    "HTTP requests being handled (probes and metrics not counted): what a drain waits for.",
    ["service"],
)
PROBE_PATHS = frozenset({"/livez", "/readyz", "/metrics"})

CALLER = web.RequestKey("caller", Caller)
REQUEST_ID = web.RequestKey("request_id", str)
CORRELATION_ID = web.RequestKey("correlation_id", str)

PUBLIC_PATHS = frozenset({"/livez", "/readyz", "/metrics", "/v1.0/openapi.json",
                          "/v1.0/asyncapi.json"})


def route_name(request: web.Request) -> str:
    info = request.match_info
    route = getattr(info, "route", None)
    resource = getattr(route, "resource", None)
    if resource is not None and resource.canonical:
        return resource.canonical
    return "unmatched"


def make_request_middleware(service: str) -> Callable:
    """Binds a request id, logs one line per request, observes latency, and turns every
    failure into an ``application/problem+json`` answer."""
    request_log = log.bind()  # bound once: the module's lazy proxy would bind on every line
    in_flight_gauge = HTTP_IN_FLIGHT.labels(service)
    seconds_by: dict[tuple[str, str, int], Histogram] = {}  # labelled children, looked up once

    @web.middleware
    async def request_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request[REQUEST_ID] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id, service=service)
        start = time.perf_counter()
        in_flight = None if request.path in PROBE_PATHS else in_flight_gauge
        if in_flight is not None:
            in_flight.inc()
        try:
            response = await handler(request)
        except Problem as problem:
            response = problem_response(problem, request_id)
        except web.HTTPException as exc:
            response = _from_http_exception(exc, request_id)
        except web.RequestPayloadError:  # a body aiohttp cannot decode: bad input, not a 500
            response = problem_response(Problem(400, BODY_UNREADABLE), request_id)
        except Exception as exc:
            outage = outage_problem(exc)
            if outage is not None:  # expected while a dependency is down: no traceback
                request_log.warning("request.dependency_unavailable", method=request.method,
                                    path=request.path, error=f"{type(exc).__name__}: {exc}")
                response = problem_response(outage, request_id)
            else:
                log.exception("request.failed", method=request.method, path=request.path)
                response = problem_response(Problem(500, "an internal error occurred"), request_id)
        finally:
            if in_flight is not None:
                in_flight.dec()
        if not response.prepared:
            response.headers[REQUEST_ID_HEADER] = request_id
        elapsed = time.perf_counter() - start
        route = route_name(request)
        key = (route, request.method, response.status)
        seconds = seconds_by.get(key)
        if seconds is None:
            seconds = seconds_by[key] = HTTP_SECONDS.labels(service, route, request.method,
                                                            str(response.status))
        seconds.observe(elapsed)
        if request.path not in ("/livez", "/metrics"):
            request_log.info("request", method=request.method, route=route, path=request.path,
                     status=response.status, ms=round(elapsed * 1000, 2))
        return response

    return request_middleware


def _from_http_exception(exc: web.HTTPException, request_id: str) -> web.StreamResponse:
    if exc.status < 400:
        return exc  # redirects and the like pass through
    headers: dict[str, str] = {}
    if isinstance(exc, web.HTTPMethodNotAllowed):
        headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        detail = f"{exc.method} is not allowed here; allowed: {headers['Allow']}"
    elif isinstance(exc, web.HTTPNotFound):
        detail = "no such resource or route"
    elif isinstance(exc, web.HTTPRequestEntityTooLarge):
        detail = "the request body is larger than 1 MiB"
    else:
        detail = exc.text or exc.reason
    if exc.headers.get("Retry-After"):
        headers["Retry-After"] = exc.headers["Retry-After"]
    return problem_response(Problem(exc.status, detail, headers=headers), request_id)


def make_auth_middleware(secret: str) -> Callable:
    """Authenticates every request under ``/v1.0/`` (but the OpenAPI document)."""
    verifier = TokenVerifier(secret)

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in PUBLIC_PATHS or not request.path.startswith("/v1.0/"):
            return await handler(request)
        try:
            token = token_from_request(request.query.get("token"),
                                       request.headers.get("Authorization"))
            caller = verifier.verify(token)
        except AuthError as exc:
            raise Problem(401, exc.detail, headers={"WWW-Authenticate": 'Bearer realm="talk"'}) from None
        request[CALLER] = caller
        structlog.contextvars.bind_contextvars(customer_id=str(caller.customer_id),
                                               agent_id=str(caller.agent_id))
        request[CORRELATION_ID] = _correlation_id(request)
        return await handler(request)

    return auth_middleware


def _correlation_id(request: web.Request) -> str:
    """``X-Correlation-ID`` if given (by the rule of ``X-Request-ID``), else the request id.
    It goes into the metadata of every event the request appends, which is immutable and
    hash-chained: a malformed one is refused (400), never stored or replaced."""
    given = request.headers.get(CORRELATION_ID_HEADER, "")
    if not given:
        return request_id_of(request)
    if not _SAFE_REQUEST_ID.fullmatch(given):
        raise Problem(400, f"{CORRELATION_ID_HEADER} must be 1 to 128 characters of"
                           " A-Z a-z 0-9 . _ : -",
                      errors=[{"field": CORRELATION_ID_HEADER, "message": "malformed"}])
    return given


def request_id_of(request: web.Request) -> str:
    return request.get(REQUEST_ID, "")


WEBSOCKET_HANDSHAKE_HEADERS = ("Upgrade", "Connection", "Sec-WebSocket-Key",
                               "Sec-WebSocket-Version", "Sec-WebSocket-Protocol",
                               "Sec-WebSocket-Extensions")


def require_ascii(request: web.Request, names: tuple[str, ...]) -> None:
    """Refuse (400) a byte that is not ASCII in headers aiohttp reads itself: it hands such a
    byte over as a surrogate, on which its own checks fail with an exception (a 500)."""
    for name in names:
        for value in request.headers.getall(name, ()):
            if not value.isascii():
                raise Problem(400, f"the {name} header is not ASCII",
                              errors=[{"field": name, "message": "malformed"}])


def correlation_id_of(request: web.Request) -> str:
    """The request's correlation id (checked by the auth middleware), else its request id."""
    return request.get(CORRELATION_ID) or request_id_of(request)


def caller_of(request: web.Request) -> Caller:
    return request[CALLER]
