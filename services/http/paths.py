"""Path parameters: a malformed id is a 404 (no such resource), never a 500."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from services.http.problems import Problem


def path_uuid(request: web.Request, name: str) -> UUID:
    try:
        return UUID(request.match_info[name])
    except ValueError:
        raise Problem(404, f"no such resource: {name} is not a UUID") from None
