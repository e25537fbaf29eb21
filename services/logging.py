"""structlog configuration: JSON lines (or a console renderer for development).

Per-request values (``request_id``) are bound with ``structlog.contextvars`` by the HTTP
middleware and appear in every line logged while the request is handled.

No line carries a credential: every line, ours and the libraries' (tracebacks included),
passes :class:`Redactor` last, which blanks JWTs, ``token=`` query values, ``Bearer``
values and the JWT secret itself. And a value that is not valid UTF-8 (a header byte that
aiohttp hands over as a surrogate) is written escaped rather than failing the line.
"""

from __future__ import annotations

import json
import logging
import re
import sys

import orjson
import structlog

from services.settings import Settings

REDACTED = "[redacted]"
MIN_SECRET_TO_REDACT = 8  # a shorter "secret" would blank ordinary words (and is refused)

_CREDENTIALS = re.compile(
    r"eyJ[A-Za-z0-9_\-]{4,}(?:\.[A-Za-z0-9_\-]*){0,2}"  # a JWT (its header is base64 '{"')
    r"|(?<=token=)[^&\s'\"]+"  # a ?token= (or &token=) query value
    r"|(?<=token%3[dD])[^&\s'\"]+"
    r"|(?<=[Bb]earer )[^\s'\",]+"  # an Authorization value
)


class Redactor:
    """A structlog processor that blanks credentials in every string value of a line."""

    def __init__(self, secret: str | None = None) -> None:
        self.secret = secret if secret and len(secret) >= MIN_SECRET_TO_REDACT else None

    def redact(self, text: str) -> str:
        if self.secret and self.secret in text:
            text = text.replace(self.secret, REDACTED)
        if "eyJ" in text or "oken" in text or "earer" in text:
            text = _CREDENTIALS.sub(REDACTED, text)
        return text

    def __call__(self, logger: object, method: str, event_dict: dict) -> dict:
        for key, value in event_dict.items():
            if isinstance(value, str):
                event_dict[key] = self.redact(value)
        return event_dict


def _orjson_dumps(obj: object, default: object = None) -> str:
    try:
        return orjson.dumps(obj, default=default or str).decode()
    except TypeError:  # a str with surrogates (undecodable input bytes): escape them
        return json.dumps(obj, default=default or str, ensure_ascii=True)


def _secret_of(settings: Settings) -> str | None:
    secret = settings.jwt_secret
    if secret is not None and hasattr(secret, "get_secret_value"):
        secret = secret.get_secret_value()
    return secret or None


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
    redactor = Redactor(_secret_of(settings))
    structlog.configure(
        processors=[
            *shared,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            redactor,
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
                    structlog.processors.format_exc_info, redactor, renderer],
    ))
    handler.talk = True  # type: ignore[attr-defined]  # replaced when configured again
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not getattr(h, "talk", False)] + [handler]
    root.setLevel(max(level, logging.WARNING))
    logging.captureWarnings(True)  # Python warnings as log lines too, not bare stderr text
