"""Keyset pagination, newest first, on ``(tm_create, id)``.

The token is opaque to clients (49 characters: the microseconds since the epoch of the last
item's ``tm_create`` as 17 digits, then its id as 32 hex digits) and names the last item of
the page; the next page holds the items strictly before it in ``(tm_create DESC, id DESC)``
order, so ties on ``tm_create`` never repeat or skip an item. A bare timestamp in the API
format is accepted too: the page then starts strictly before that instant.

:data:`TOKEN_PATTERN` (the OpenAPI document publishes it) matches exactly the tokens that
decode: every string it accepts is a valid token, every other is refused (400).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.timefmt import parse_ts

MIN_UUID = UUID(int=0)  # with a bare timestamp: strictly before that instant
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# A valid date (leap years included; no year 0000) and time in the API's format.
_LEAP_YEAR = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)"
_DATE = (r"(?!0000)(?:" + _LEAP_YEAR + r"-02-29|[0-9]{4}-(?:(?:0[13578]|1[02])-"
         r"(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-"
         r"(?:0[1-9]|1[0-9]|2[0-8])))")
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]\.[0-9]{6}"
_ISSUED = r"[0-9]{17}[0-9a-f]{32}"  # what encode_token makes
TOKEN_PATTERN = rf"^(?:{_ISSUED}|{_DATE} {_TIME})?$(?!\n)"
_TOKEN_RE = re.compile(TOKEN_PATTERN)


class InvalidPageToken(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Cursor:
    """Items strictly before ``(tm_create, id)`` in newest-first order."""

    tm_create: datetime
    id: UUID


def encode_token(tm_create: datetime, item_id: UUID) -> str:
    micros = (tm_create - EPOCH) // timedelta(microseconds=1)
    return f"{micros:017d}{item_id.hex}"


def decode_token(token: str) -> Cursor | None:
    if not _TOKEN_RE.search(token):
        raise InvalidPageToken("page_token is not a token this service issued")
    if not token:
        return None
    if len(token) == 49 and token[:17].isdigit():
        return Cursor(EPOCH + timedelta(microseconds=int(token[:17])), UUID(hex=token[17:]))
    return Cursor(parse_ts(token), MIN_UUID)  # a bare timestamp: the pattern made it valid


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
