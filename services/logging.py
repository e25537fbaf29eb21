"""structlog configuration: JSON lines (or a console renderer for development).

Per-request values (``request_id``) are bound with ``structlog.contextvars`` by the HTTP
middleware and appear in every line logged while the request is handled.
"""

from __future__ import annotations

import logging
import sys

import orjson
import structlog

from services.settings import Settings


def _orjson_dumps(obj: object, default: object = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def configure_logging(settings: Settings) -> None:
    level = logging.getLevelName(settings.log_level.upper())
    if not isinstance(level, int):
        level = logging.INFO
    renderer: structlog.types.Processor
    if settings.log_format == "console":
        renderer = structlog.dev.ConsoleRenderer()
    else:
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Libraries that use stdlib logging (aiohttp.access is replaced by our own line).
    logging.basicConfig(level=max(level, logging.WARNING), stream=sys.stderr,
                        format="%(levelname)s %(name)s %(message)s")
