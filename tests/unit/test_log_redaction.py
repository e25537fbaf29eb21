"""The log redactor blanks credentials wherever they sit in a line, and leaves the rest."""

from __future__ import annotations

import pytest

from services.logging import REDACTED, Redactor, _orjson_dumps

SECRET = "s3cret-value-that-is-long-enough-0123456789"
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJjdXN0b21lcl9pZCI6IngifQ."
       "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")


@pytest.mark.parametrize("text", [
    f"GET /v1.0/ws?token={JWT} HTTP/1.1",
    f"/v1.0/service_agents/talk_chats?page_size=5&token={JWT}",
    f"b'GE\\x01T /v1.0/x?token={JWT[:40]}...'",  # aiohttp's truncated request line
    f"Authorization: Bearer {JWT}",
    f"/v1.0/service_agents/talk_chats/{JWT}",
    f"/v1.0/x%3Ftoken%3D{JWT}",
    f"secret is {SECRET}!",
])
def test_credentials_are_blanked(text):
    out = Redactor(SECRET).redact(text)
    assert REDACTED in out
    assert JWT[:40] not in out and JWT.split(".")[2] not in out and SECRET not in out


def test_other_text_is_left_alone_and_a_short_secret_is_not_used():
    text = "request path=/v1.0/service_agents/talk_chats status=200 tokens counted"
    assert Redactor(SECRET).redact(text) == text
    assert Redactor("a").redact("a banana") == "a banana"


def test_every_string_value_of_a_line_is_redacted():
    line = Redactor(SECRET)(None, "info", {"event": "x", "path": f"/a?token={JWT}",
                                           "exception": f"Traceback ... {JWT}", "n": 3})
    assert line == {"event": "x", "path": f"/a?token={REDACTED}",
                    "exception": f"Traceback ... {REDACTED}", "n": 3}


def test_a_value_with_surrogates_is_written_escaped():
    assert _orjson_dumps({"event": "bad \udcff byte"}) == '{"event": "bad \\udcff byte"}'
