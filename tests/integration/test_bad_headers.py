"""Bad bytes in the headers every service reads, and requests aiohttp itself refuses: each is
a 4xx ``application/problem+json`` and nothing is stored (the command API, the query API and
the gateway's ``/v1.0/ws`` of one ``talk up`` app, served as in production)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import orjson
import pytest

from services.gateway.inprocess_feed import InProcessFeed
from services.http.problems import PROBLEM_JSON
from services.up import build_up_app
from tests.integration.raw_http import RawAnswer, request_bytes, send_raw, served
from tests.support import bearer

CHATS = "/v1.0/service_agents/talk_chats"
MESSAGES = "/v1.0/service_agents/talk_messages"
WS = "/v1.0/ws"
WS_UPGRADE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
              "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
NEW_TALK = orjson.dumps({"type": "group", "name": "bad headers"})

NOT_UTF8 = [b"\xff\xfe", b"\xc3\x28", b"caf\xe9", b"\xed\xa0\x80"]  # the last: a surrogate


@pytest.fixture()
async def port(settings) -> AsyncIterator[int]:
    async with served(build_up_app(settings, InProcessFeed())) as bound:
        yield bound


async def _counts(db) -> tuple[int, int]:
    async with db.statement("test_counts") as conn:
        cur = await conn.execute("SELECT (SELECT count(*) FROM events) AS events,"
                                 " (SELECT count(*) FROM idempotency_keys) AS keys")
        row = await cur.fetchone()
        return row["events"], row["keys"]


def _is_problem(answer: RawAnswer, status: int) -> dict:
    assert answer.status == status, (answer.status, answer.body)
    assert answer.content_type == PROBLEM_JSON, answer.headers
    problem = answer.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert problem["request_id"]
    return problem


def _token_bytes() -> bytes:
    return bearer(uuid4(), uuid4())["Authorization"].encode()


def _requests(headers: dict[str, bytes | str]) -> list[bytes]:
    """A command, a query and a WebSocket upgrade, each with ``headers``."""
    return [request_bytes("POST", CHATS, headers, NEW_TALK),
            request_bytes("GET", CHATS, headers),
            request_bytes("GET", WS, {**WS_UPGRADE, **headers})]


async def test_an_undecodable_authorization_is_401(port, db):
    before = await _counts(db)
    token = _token_bytes()
    for bad in NOT_UTF8:
        for value in (b"Bearer " + bad, token + bad, bad + b" " + token[len(b"Bearer "):]):
            for request in _requests({"Authorization": value}):
                answer = await send_raw(port, request)
                _is_problem(answer, 401)
                assert answer.headers["www-authenticate"].startswith("Bearer")
    # and a token in the query that is not a token at all
    for request in (request_bytes("GET", f"{CHATS}?token=%FF%FE", {}),
                    request_bytes("GET", f"{WS}?token=a%20b", WS_UPGRADE)):
        _is_problem(await send_raw(port, request), 401)
    assert await _counts(db) == before


async def test_a_malformed_idempotency_key_is_400_and_stores_nothing(port, db):
    before = await _counts(db)
    token = _token_bytes()
    for bad in [*NOT_UTF8, b"k" * 256, b"two words", b""]:
        request = request_bytes("POST", CHATS, {"Authorization": token, "Idempotency-Key": bad},
                                NEW_TALK)
        problem = _is_problem(await send_raw(port, request), 400)
        assert problem["errors"][0]["field"] == "Idempotency-Key", problem
    assert await _counts(db) == before
    # the longest well-formed key is taken
    request = request_bytes("POST", CHATS, {"Authorization": token, "Idempotency-Key": "~" * 255},
                            NEW_TALK)
    assert (await send_raw(port, request)).status == 200
    assert await _counts(db) != before


async def test_a_malformed_correlation_id_is_400_everywhere_and_stores_nothing(port, db):
    before = await _counts(db)
    token = _token_bytes()
    for bad in [*NOT_UTF8, b"c" * 129, b"has space", b"slash/ed", b"x" * 8000]:
        for request in _requests({"Authorization": token, "X-Correlation-ID": bad}):
            problem = _is_problem(await send_raw(port, request), 400)
            assert problem["errors"][0]["field"] == "X-Correlation-ID", problem
    assert await _counts(db) == before


async def test_a_well_formed_correlation_id_is_kept_in_the_metadata(port, db):
    correlation = "Az09._:-" * 16  # 128 characters, every kind allowed
    request = request_bytes("POST", CHATS, {"Authorization": _token_bytes(),
                                            "X-Correlation-ID": correlation}, NEW_TALK)
    answer = await send_raw(port, request)
    assert answer.status == 200, answer.body
    chat_id = answer.json()["id"]
    async with db.statement("test_metadata") as conn:
        cur = await conn.execute("SELECT metadata FROM events WHERE stream_id = %s",
                                 (f"chat-{chat_id}",))
        rows = await cur.fetchall()
    assert rows and all(r["metadata"]["correlation_id"] == correlation for r in rows)


async def test_undecodable_websocket_handshake_headers_are_400(port):
    token = _token_bytes()
    for name in ("Sec-WebSocket-Key", "Sec-WebSocket-Version", "Upgrade", "Connection",
                 "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"):
        for bad in NOT_UTF8:
            request = request_bytes("GET", WS, {**WS_UPGRADE, "Authorization": token,
                                                name: WS_UPGRADE.get(name, "x").encode() + bad})
            problem = _is_problem(await send_raw(port, request), 400)
            assert problem["errors"][0]["field"] == name, problem
    # and a well-formed handshake is upgraded
    assert (await send_raw(port, request_bytes(
        "GET", WS, {**WS_UPGRADE, "Authorization": token}))).status == 101


async def test_an_undecodable_body_or_expect_is_a_problem_not_a_500(port, db):
    before = await _counts(db)
    token = _token_bytes()
    for encoding in (b"gzip", b"deflate", b"br"):
        request = request_bytes("POST", CHATS, {"Authorization": token,
                                                "Content-Encoding": encoding}, NEW_TALK)
        _is_problem(await send_raw(port, request), 400)
    for expect in (b"100-\xff", b"something-else"):
        for request in _requests({"Authorization": token, "Expect": expect}):
            _is_problem(await send_raw(port, request), 417)
    assert await _counts(db) == before


async def test_an_undecodable_min_position_is_400(port):
    token = _token_bytes()
    for bad in [*NOT_UTF8, "١".encode(), b"12 34", b"-1"]:
        request = request_bytes("GET", CHATS, {"Authorization": token,
                                               "X-Talk-Min-Position": bad})
        problem = _is_problem(await send_raw(port, request), 400)
        assert problem["errors"][0]["field"] == "X-Talk-Min-Position", problem


SECRET_QUERY = "token=eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.c2lnbmF0dXJl"


@pytest.mark.parametrize("request_", [
    pytest.param(f"GE\x01T {CHATS}?{SECRET_QUERY} HTTP/1.1\r\nHost: t\r\n\r\n".encode(),
                 id="bad-method"),
    pytest.param(b"GET /v1.0/\xff?" + SECRET_QUERY.encode() + b" HTTP/1.1\r\nHost: t\r\n\r\n",
                 id="bad-url-byte"),
    pytest.param(f"GET {CHATS}?{SECRET_QUERY} HTTP/9.x\r\nHost: t\r\n\r\n".encode(),
                 id="bad-version"),
    pytest.param(f"GET {CHATS}?{SECRET_QUERY}{'a' * 9000} HTTP/1.1\r\nHost: t\r\n\r\n".encode(),
                 id="request-line-too-long"),
    pytest.param(f"GET {CHATS}?{SECRET_QUERY} HTTP/1.1\r\nHost: t\r\nX-Long: {'a' * 9000}"
                 "\r\n\r\n".encode(), id="header-too-long"),
    pytest.param(f"GET {CHATS}?{SECRET_QUERY} HTTP/1.1\r\nHost: t\r\nX-Nul: a\x00b"
                 "\r\n\r\n".encode(), id="nul-in-header"),
    pytest.param(f"POST {CHATS}?{SECRET_QUERY} HTTP/1.1\r\nHost: t\r\nContent-Length: x1"
                 "\r\n\r\n".encode(), id="bad-content-length"),
    pytest.param(f"GET {CHATS}?{SECRET_QUERY} HTTP/1.1\r\nHost: t\r\nBad Name: v"
                 "\r\n\r\n".encode(), id="bad-header-name"),
])
async def test_what_aiohttp_refuses_is_a_problem_json_400(port, db, request_):
    before = await _counts(db)
    answer = await send_raw(port, request_)
    problem = _is_problem(answer, 400)
    assert problem["type"].endswith("/bad-request")
    assert answer.headers["x-request-id"] == problem["request_id"]
    assert b"eyJ" not in answer.body and b"token" not in answer.body  # nothing of it echoed
    assert await _counts(db) == before
