"""JWT verification: HS256 only, expiry enforced, claims required."""

from __future__ import annotations

import time
from uuid import uuid4

import jwt
import pytest

from services.auth import AuthError, TokenVerifier, mint_token, token_from_request, verify_token

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


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_verifier_remembers_good_tokens_until_they_expire():
    clock = Clock(time.time())
    verifier = TokenVerifier(SECRET, clock=clock)
    token = mint_token(SECRET, uuid4(), uuid4(), ttl=60)
    first = verifier.verify(token)
    assert verifier.verify(token) is first  # answered from memory
    clock.now = first.expires_at
    with pytest.raises(AuthError, match="expired"):
        verifier.verify(token)
    assert token not in verifier._verified  # forgotten: verified afresh if seen again


def test_the_verifier_does_not_remember_failures_and_stays_bounded():
    verifier = TokenVerifier(SECRET, size=2)
    forged = mint_token("another-secret-of-enough-length-000000", uuid4(), uuid4())
    for _ in range(2):
        with pytest.raises(AuthError, match="signature"):
            verifier.verify(forged)
    tokens = [mint_token(SECRET, uuid4(), uuid4()) for _ in range(3)]
    callers = [verifier.verify(t) for t in tokens]
    assert list(verifier._verified) == tokens[1:]  # the oldest was dropped
    assert verifier.verify(tokens[0]) == callers[0]  # verified again, same caller
