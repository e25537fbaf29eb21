"""JWT verification: HS256 only, expiry enforced, claims required."""

from __future__ import annotations

import time
from uuid import uuid4

import jwt
import pytest

from services.auth import AuthError, mint_token, token_from_request, verify_token

SECRET = "unit-test-secret-0123456789abcdef0123"


def test_minted_tokens_verify():
    customer, agent = uuid4(), uuid4()
    caller = verify_token(SECRET, mint_token(SECRET, customer, agent, roles=["audit"]))
    assert (caller.customer_id, caller.agent_id, caller.is_auditor) == (customer, agent, True)


@pytest.mark.parametrize("token_factory, why", [
    (lambda: mint_token(SECRET, uuid4(), uuid4(), ttl=-5), "expired"),
    (lambda: mint_token("another-secret-0123456789abcdef012345", uuid4(), uuid4()), "signature"),
    (lambda: jwt.encode({"customer_id": str(uuid4()), "agent_id": str(uuid4()),
                         "exp": int(time.time()) + 60}, SECRET, algorithm="HS512"), "HS256"),
    (lambda: jwt.encode({"customer_id": "x", "agent_id": str(uuid4()),
                         "exp": int(time.time()) + 60}, SECRET, algorithm="HS256"), "UUID"),
    (lambda: jwt.encode({"customer_id": str(uuid4()), "agent_id": str(uuid4())}, SECRET,
                        algorithm="HS256"), "exp"),
])
def test_untrusted_tokens_are_refused(token_factory, why):
    with pytest.raises(AuthError, match=why):
        verify_token(SECRET, token_factory())


def test_token_sources():
    assert token_from_request("q", None) == "q"
    assert token_from_request("q", "Bearer h") == "h"
    with pytest.raises(AuthError):
        token_from_request(None, None)
    with pytest.raises(AuthError):
        token_from_request(None, "Basic abc")
