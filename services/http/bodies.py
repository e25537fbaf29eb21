"""Reading request bodies and query strings into pydantic models, with 4xx problems."""

from __future__ import annotations

from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, ValidationError

from services.http.problems import Problem

M = TypeVar("M", bound=BaseModel)


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        loc = err.get("loc", ())
        field = ""
        for part in loc:
            if isinstance(part, int):
                field += f"[{part}]"
            else:
                field += ("." if field else "") + str(part)
        out.append({"field": field or "body", "message": err.get("msg", "invalid")})
    return out


async def read_json(request: web.Request) -> Any:
    """The body as JSON (whatever the declared type, if it parses); otherwise 400 for
    malformed JSON sent as JSON, 415 for another content type."""
    raw = await request.read()  # aiohttp raises 413 past client_max_size
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        ctype = request.content_type
        if ctype not in ("application/json", "application/octet-stream") and not ctype.endswith("+json"):
            raise Problem(415, f"the body must be application/json, not {ctype}") from None
        raise Problem(400, f"the body is not valid JSON: {exc}") from None


async def read_body(request: web.Request, model: type[M]) -> M:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise Problem(400, "the body must be a JSON object",
                      errors=[{"field": "body", "message": "expected an object"}])
    return parse_model(model, data, what="body")


def parse_model(model: type[M], data: dict[str, Any], *, what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Problem(400, f"the request {what} is invalid", errors=validation_errors(exc)) from None


def parse_query(request: web.Request, model: type[M]) -> M:
    return parse_model(model, dict(request.query), what="query")
