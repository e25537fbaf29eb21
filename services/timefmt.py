"""The API's timestamp format: UTC ``YYYY-MM-DD HH:MM:SS.ffffff``; unset is ``""``."""

from __future__ import annotations

from datetime import UTC, datetime

FORMAT = "%Y-%m-%d %H:%M:%S.%f"


def format_ts(value: datetime | None) -> str:
    if value is None:
        return ""
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime(FORMAT)


def parse_ts(text: str) -> datetime:
    """Parse the API format (UTC); raises ValueError."""
    return datetime.strptime(text, FORMAT).replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
