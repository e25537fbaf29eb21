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
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # Libraries that use stdlib logging (psycopg's pool, aiohttp, aio-pika) log through the
    # same renderer, so every line is JSON too (aiohttp.access is replaced by our own line).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer],
    ))
    handler.talk = True  # type: ignore[attr-defined]  # replaced when configured again
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "talk", False)] + [handler]
    root.setLevel(max(level, logging.WARNING))
    logging.captureWarnings(True)  # Python warnings as log lines too, not bare stderr text
