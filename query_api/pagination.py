"""Keyset pagination, newest first, on ``(tm_create, id)``.

The token is opaque (urlsafe base64 of ``"<tm_create>|<id>"``) and names the last item of
the page; the next page holds the items strictly before it in ``(tm_create DESC, id DESC)``
order, so ties on ``tm_create`` never repeat or skip an item. A bare timestamp in the API
format is accepted too: the page then starts strictly before that instant.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.timefmt import format_ts, parse_ts

MIN_UUID = UUID(int=0)  # with a bare timestamp: strictly before that instant


class InvalidPageToken(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Cursor:
    """Items strictly before ``(tm_create, id)`` in newest-first order."""

    tm_create: datetime
    id: UUID


def encode_token(tm_create: datetime, item_id: UUID) -> str:
    raw = f"{format_ts(tm_create)}|{item_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> Cursor | None:
    if not token:
        return None
    try:
        return Cursor(parse_ts(token), MIN_UUID)  # a bare timestamp
    except ValueError:
        pass
    try:
        padded = token + "=" * (-len(token) % 4)
        ts, _, item = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
        return Cursor(parse_ts(ts), UUID(item))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidPageToken("page_token is not a token this service issued") from None


class PageQuery(BaseModel):
    model_config = ConfigDict(extra="ignore")

    page_size: int = Field(default=100, ge=1, le=100)
    page_token: str = ""

    @field_validator("page_token")
    @classmethod
    def _token_is_valid(cls, value: str) -> str:
        decode_token(value)  # raises InvalidPageToken (a ValueError) → 400
        return value

    @property
    def cursor(self) -> Cursor | None:
        return decode_token(self.page_token)


def page_envelope(items: list[dict], rows: list[dict], page_size: int,
                  key: str = "tm_create") -> dict:
    """The list answer. ``rows`` were fetched with ``LIMIT page_size + 1``, ordered by
    ``(row[key], id)`` newest first (``key``: ``tm_create`` unless the list says otherwise)."""
    if len(rows) > page_size:
        last = rows[page_size - 1]
        token = encode_token(last[key], last["id"])
        return {"result": items[:page_size], "next_page_token": token}
    return {"result": items, "next_page_token": ""}
