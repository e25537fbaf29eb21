"""JSON answers, serialised with orjson."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


def json_ok(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(data), content_type="application/json",
                        headers=headers)
