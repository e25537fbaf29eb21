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


PROBLEM_BASE = "https://talk.dev/problems/"


def generic_slug(status: int) -> str:
    """The problem type of an answer no rule names more precisely: its status's title."""
    return TITLES.get(status, "error").lower().replace(" ", "-")


def problem_type_url(slug: str) -> str:
    return f"{PROBLEM_BASE}{slug}"


class Problem(Exception):
    """Raise from a handler to answer a problem; ``errors`` lists field problems. ``type_``
    is a slug (``already-participant``) or a full URL; unset, it is the status's generic one
    (``conflict``)."""

    def __init__(self, status: int, detail: str, *, type_: str | None = None,
                 errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        slug = type_ or generic_slug(status)
        self.type = slug if "://" in slug else problem_type_url(slug)
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

