"""RFC 9457 problem details: every error answer of every service is one of these."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

PROBLEM_JSON = "application/problem+json"

TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class Problem(Exception):
    """Raise from a handler to answer a problem; ``errors`` lists field problems."""

    def __init__(self, status: int, detail: str, *, type_: str | None = None,
                 errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type_ or f"https://talk.dev/problems/{TITLES.get(status, 'error').lower().replace(' ', '-')}"
        self.errors = errors
        self.headers = headers or {}


def problem_response(problem: Problem, request_id: str | None) -> web.Response:
    body: dict[str, Any] = {
        "type": problem.type,
        "title": TITLES.get(problem.status, "Error"),
        "status": problem.status,
        "detail": problem.detail,
        "request_id": request_id or "",
    }
    if problem.errors:
        body["errors"] = problem.errors
    return web.Response(
        status=problem.status,
        body=orjson.dumps(body),
        content_type=PROBLEM_JSON,
        headers=problem.headers,
    )

