"""Resume tokens: an opaque, URL-safe, signed encoding of a place in the published stream.

A token names the stream offset of the last event a client received, a 6-byte tag of that
event's ``message_id``, and an 8-byte MAC of both and of the customer the event belongs to,
keyed by the deployment's secret (``TALK_JWT_SECRET``: every gateway of a deployment
accepts the tokens of the others). So a token is checked without reading the stream:

* a token that does not decode is ``invalid_resume_token``;
* a token whose MAC does not match (forged, altered, of another deployment, or of another
  customer) answers ``resync_required`` at once: nothing is replayed;
* a genuine one is replayed from: the gateway reads the stream from a little before its
  offset and checks that the event found there carries the same tag, so a stream that was
  recreated is caught instead of silently replaying other events.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass

_LAYOUT = struct.Struct(">Q6s8s")
MAX_TOKEN_LENGTH = 64


class InvalidResumeToken(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ResumePoint:
    offset: int
    tag: bytes
    genuine: bool  # the MAC matched: issued by this deployment, for this customer


def message_tag(message_id: str) -> bytes:
    return hashlib.blake2b(message_id.encode(), digest_size=6).digest()


class ResumeTokens:
    """Issues and checks the tokens of one deployment (keyed by its secret)."""

    __slots__ = ("_key",)

    def __init__(self, secret: str) -> None:
        self._key = hashlib.blake2b(secret.encode(), digest_size=32,
                                    person=b"talk-resume").digest()

    def _mac(self, offset: int, tag: bytes, customer_id: str) -> bytes:
        return hashlib.blake2b(struct.pack(">Q6s", offset, tag) + customer_id.encode(),
                               key=self._key, digest_size=8).digest()

    def encode(self, offset: int, message_id: str, customer_id: str) -> str:
        tag = message_tag(message_id)
        raw = _LAYOUT.pack(offset, tag, self._mac(offset, tag, customer_id))
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    def decode(self, token: object, customer_id: str) -> ResumePoint:
        """The point ``token`` names; ``genuine`` says whether this deployment issued it for
        ``customer_id``. Raises :class:`InvalidResumeToken` if it is not a token at all."""
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise InvalidResumeToken("resume_token must be a token received in a frame")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
            offset, tag, mac = _LAYOUT.unpack(raw)
        except (binascii.Error, struct.error, ValueError):
            raise InvalidResumeToken("resume_token is not a token this gateway issued") from None
        genuine = hmac.compare_digest(mac, self._mac(offset, tag, customer_id))
        return ResumePoint(offset, tag, genuine)
