"""What every request meets: authentication, request ids, problem answers, health."""

from __future__ import annotations

import time
from uuid import uuid4

import jwt
import pytest

from services.http.problems import PROBLEM_JSON
from tests.support import TEST_SECRET, bearer

CHATS = "/v1.0/service_agents/talk_chats"


def _token(claims: dict, secret: str = TEST_SECRET, alg: str = "HS256") -> str:
    return jwt.encode(claims, secret, algorithm=alg)


def _claims(**over) -> dict:
    base = {"customer_id": str(uuid4()), "agent_id": str(uuid4()), "exp": int(time.time()) + 60}
    base.update(over)
    return base


def _alg_none(claims: dict) -> str:
    import base64
    import json

    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}."


async def assert_problem(resp, status: int) -> dict:
    assert resp.status == status, await resp.text()
    assert resp.content_type == PROBLEM_JSON
    body = await resp.json(content_type=None)
    assert body["status"] == status
    assert {"type", "title", "status", "detail", "request_id"} <= set(body)
    assert body["request_id"] == resp.headers["X-Request-ID"]
    return body


@pytest.mark.parametrize("headers", [
    pytest.param({}, id="missing"),
    pytest.param({"Authorization": "Bearer " + _token(_claims(exp=int(time.time()) - 10))}, id="expired"),
    pytest.param({"Authorization": "Bearer " + _token(_claims(), secret="another-secret-of-enough-length")}, id="wrong-signature"),
    pytest.param({"Authorization": "Bearer " + _alg_none(_claims())}, id="alg-none"),
    pytest.param({"Authorization": "Bearer " + _token({"agent_id": str(uuid4()), "exp": int(time.time()) + 60})}, id="no-customer"),
    pytest.param({"Authorization": "Basic Zm9vOmJhcg=="}, id="not-bearer"),
    pytest.param({"Authorization": "Bearer garbage"}, id="garbage"),
])
async def test_untrusted_tokens_get_401(api, headers):
    resp = await api.get(CHATS, headers=headers)
    await assert_problem(resp, 401)
    resp = await api.post(CHATS, json={"type": "group"}, headers=headers)
    await assert_problem(resp, 401)


async def test_token_in_query_string_is_accepted(api):
    from services.auth import mint_token

    token = mint_token(TEST_SECRET, uuid4(), uuid4())
    resp = await api.get(f"{CHATS}?token={token}")
    assert resp.status == 200
    assert await resp.json() == {"result": [], "next_page_token": ""}


async def test_problem_answers_for_every_failure(api):
    auth = bearer(uuid4(), uuid4())
    # malformed JSON
    resp = await api.post(CHATS, data=b"{not json", headers={**auth, "Content-Type": "application/json"})
    await assert_problem(resp, 400)
    # schema errors list the fields
    resp = await api.post(CHATS, json={"type": 5, "participants": [{"owner_id": "x"}]}, headers=auth)
    body = await assert_problem(resp, 400)
    fields = {e["field"] for e in body["errors"]}
    assert "participants[0].owner_id" in fields
    # unknown route
    resp = await api.get("/v1.0/no/such/route", headers=auth)
    await assert_problem(resp, 404)
    # wrong method, with Allow
    resp = await api.patch(CHATS, json={}, headers=auth)
    await assert_problem(resp, 405)
    assert set(resp.headers["Allow"].split(", ")) == {"GET", "POST"}
    # body over 1 MiB
    resp = await api.post(CHATS, data=b"x" * (1024 * 1024 + 1),
                          headers={**auth, "Content-Type": "application/json"})
    await assert_problem(resp, 413)
    # a body that is not an object
    resp = await api.post(CHATS, json=[1, 2], headers=auth)
    await assert_problem(resp, 400)


async def test_request_id_is_echoed(api):
    resp = await api.get("/livez", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    resp = await api.get("/livez", headers={"X-Request-ID": "bad id with spaces"})
    assert resp.headers["X-Request-ID"] != "bad id with spaces"


async def test_health_and_metrics(api):
    assert (await api.get("/livez")).status == 200
    resp = await api.get("/readyz")
    assert resp.status == 200 and (await resp.json())["checks"]["postgres"] == "ok"
    resp = await api.get("/metrics")
    text = await resp.text()
    assert resp.status == 200 and "talk_http_request_seconds" in text


async def test_create_a_talk_and_read_it_back(api):
    customer, agent = uuid4(), uuid4()
    auth = bearer(customer, agent)
    resp = await api.post(CHATS, json={"type": "group", "name": "support", "detail": "tier 2"}, headers=auth)
    assert resp.status == 200, await resp.text()
    created = await resp.json()
    position = resp.headers["X-Talk-Position"]
    assert set(created) == {"id", "customer_id", "type", "name", "detail", "member_count",
                            "tm_create", "tm_update", "tm_delete", "status"}
    assert created["customer_id"] == str(customer)
    assert (created["type"], created["name"], created["detail"], created["member_count"]) == ("group", "support", "tier 2", 1)
    assert len(created["tm_create"]) == len("2026-01-01 00:00:00.000000")
    assert created["tm_update"] == created["tm_create"]

    resp = await api.get(f"{CHATS}/{created['id']}", headers={**auth, "X-Talk-Min-Position": position})
    assert resp.status == 200
    seen = await resp.json()  # with the caller's view of it (Talk 1.1)
    assert {k: seen.pop(k) for k in ("unread_count", "mention_count")} == {
        "unread_count": 0, "mention_count": 0}
    assert seen.pop("last_message")["type"] == "system" and seen.pop("tm_last_message")
    assert seen == created
