"""JWT authentication: HS256 only, claims ``customer_id``, ``agent_id``, ``exp``."""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

import jwt

ALGORITHM = "HS256"


class AuthError(Exception):
    """The token is missing or cannot be trusted; ``detail`` says why (no secrets)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Caller:
    """The authenticated agent."""

    customer_id: UUID
    agent_id: UUID
    roles: frozenset[str] = field(default_factory=frozenset)
    expires_at: float | None = None  # the token's ``exp`` (seconds since the epoch)

    @property
    def is_auditor(self) -> bool:
        return "audit" in self.roles


def mint_token(secret: str, customer_id: UUID, agent_id: UUID, ttl: int = 3600,
               roles: list[str] | None = None) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "customer_id": str(customer_id),
        "agent_id": str(agent_id),
        "iat": now,
        "exp": now + ttl,
    }
    if roles:
        claims["roles"] = list(roles)
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify_token(secret: str, token: str) -> Caller:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM],
            options={"require": ["exp", "customer_id", "agent_id"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("the token has expired") from None
    except jwt.InvalidAlgorithmError:
        raise AuthError("the token is not signed with HS256") from None
    except jwt.InvalidSignatureError:
        raise AuthError("the token's signature does not verify") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"the token lacks the claim {exc.claim!r}") from None
    except jwt.PyJWTError:
        raise AuthError("the token is malformed") from None
    try:
        customer_id = UUID(str(claims["customer_id"]))
        agent_id = UUID(str(claims["agent_id"]))
    except ValueError:
        raise AuthError("customer_id and agent_id must be UUIDs") from None
    roles = claims.get("roles") or []
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise AuthError("roles must be a list of strings")
    return Caller(customer_id=customer_id, agent_id=agent_id, roles=frozenset(roles),
                  expires_at=float(claims["exp"]))


class TokenVerifier:
    """``verify_token`` with a memory of the last ``size`` tokens that verified.

    A token is the same bytes on every request of a session, and the same bytes under the same
    secret verify the same way until the token's ``exp``; so a remembered token is answered
    from memory (expiry still checked, against ``clock``) and the HMAC and the JSON decoding
    run once per token instead of once per request. Tokens that fail are not remembered.
    """

    def __init__(self, secret: str, size: int = 10_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.secret = secret
        self.size = size
        self.clock = clock
        self._verified: OrderedDict[str, Caller] = OrderedDict()

    def verify(self, token: str) -> Caller:
        caller = self._verified.get(token)
        if caller is None:
            caller = verify_token(self.secret, token)
            self._verified[token] = caller
            if len(self._verified) > self.size:
                self._verified.popitem(last=False)
        elif caller.expires_at is not None and caller.expires_at <= self.clock():
            del self._verified[token]
            raise AuthError("the token has expired")
        else:
            self._verified.move_to_end(token)
        return caller


# A JWT is three base64url parts joined by dots: anything else (a byte that is not UTF-8,
# which aiohttp hands over as a surrogate, a control character, a space) cannot be one,
# and is refused before it reaches the decoder, a cache key or a log line.
_TOKEN_CHARS = re.compile(r"[A-Za-z0-9_\-.=]{1,8192}")


def token_from_request(query_token: str | None, authorization: str | None) -> str:
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise AuthError("the Authorization header must be 'Bearer <token>'")
        return _well_formed(value.strip())
    if query_token:
        return _well_formed(query_token)
    raise AuthError("a token is required (Authorization: Bearer <token> or ?token=)")


def _well_formed(token: str) -> str:
    if not _TOKEN_CHARS.fullmatch(token):
        raise AuthError("the token is malformed (a JWT is ASCII: base64url parts and dots)")
    return token
