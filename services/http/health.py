"""``/livez``, ``/readyz`` and ``/metrics``, served by every service."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, generate_latest

from services.http.middlewares import request_id_of
from services.http.problems import PROBLEM_JSON

ReadinessCheck = Callable[[], Awaitable[None]]
READINESS_CHECKS = web.AppKey("readiness_checks", dict[str, ReadinessCheck])
CHECK_TIMEOUT = 2.0
READY = Gauge("talk_ready", "1 if this process's last /readyz answered 200, else 0.")
READINESS_FAILURES = Counter("talk_readiness_failures_total",
                             "Readiness checks that failed, by check.", ["check"])


async def livez(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    checks = request.app[READINESS_CHECKS]
    results: dict[str, str] = {}

    async def run(name: str, check: ReadinessCheck) -> None:
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT)
            results[name] = "ok"
        except Exception as exc:  # a failed dependency is the answer, not an error
            results[name] = f"failed: {type(exc).__name__}: {exc}"[:300]

    await asyncio.gather(*(run(n, c) for n, c in checks.items()))
    failed = sorted(name for name, result in results.items() if result != "ok")
    READY.set(0 if failed else 1)
    if not failed:
        return web.json_response({"status": "ok", "checks": results})
    for name in failed:
        READINESS_FAILURES.labels(name).inc()
    body = {
        "type": "https://talk.dev/problems/not-ready",
        "title": "Service Unavailable",
        "status": 503,
        "detail": f"not ready: {', '.join(failed)}",
        "request_id": request_id_of(request),
        "checks": results,
    }
    return web.Response(status=503, body=orjson.dumps(body), content_type=PROBLEM_JSON,
                        headers={"Retry-After": "1"})


async def metrics(request: web.Request) -> web.Response:
    resp = web.Response(body=generate_latest(REGISTRY))
    resp.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    return resp


def add_health_routes(app: web.Application, checks: dict[str, ReadinessCheck] | None = None) -> None:
    app[READINESS_CHECKS] = dict(checks or {})
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
