"""Page tokens: opaque, round-trip exactly, accept a bare timestamp, reject garbage."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from query_api.pagination import MIN_UUID, InvalidPageToken, PageQuery, decode_token, encode_token


def test_token_round_trip():
    ts = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    item = uuid4()
    cursor = decode_token(encode_token(ts, item))
    assert (cursor.tm_create, cursor.id) == (ts, item)


def test_bare_timestamp_means_strictly_before_that_instant():
    cursor = decode_token("2026-01-02 03:04:05.678901")
    assert cursor.tm_create == datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    assert cursor.id == MIN_UUID


@pytest.mark.parametrize("token", ["garbage!", "Zm9v", "MjAyNg", "2026-13-01 00:00:00.000000"])
def test_garbage_tokens_are_rejected(token):
    with pytest.raises(InvalidPageToken):
        decode_token(token)


def test_page_query_bounds():
    assert PageQuery().page_size == 100
    for bad in ("0", "101", "-1", "abc"):
        with pytest.raises(ValueError):
            PageQuery.model_validate({"page_size": bad})
    assert PageQuery.model_validate({"page_size": "1"}).page_size == 1


@pytest.mark.parametrize("token", [
    "", "2024-02-29 00:00:00.000000", "2023-02-29 00:00:00.000000", "0000-01-01 00:00:00.000000",
    "2026-01-02 03:04:05.678901\n", "2026-1-2 3:4:5.6", "0" * 17 + "a" * 32,
    "0" * 17 + "A" * 32, "1" * 16 + "a" * 32, "2026-01-02 24:00:00.000000"])
def test_the_published_pattern_accepts_exactly_the_tokens_that_decode(token):
    import re

    from query_api.pagination import TOKEN_PATTERN
    try:
        decode_token(token)
        decodes = True
    except InvalidPageToken:
        decodes = False
    assert bool(re.search(TOKEN_PATTERN, token)) == decodes
    assert decodes == (token in ("", "2024-02-29 00:00:00.000000", "0" * 17 + "a" * 32))
