"""Resume tokens: an opaque, URL-safe encoding of a place in the published stream.

A token names the stream offset of the last event a client received and a 6-byte tag of
that event's ``message_id``. On resume the gateway reads the stream from a little before
that offset and checks that the event found there carries the same tag: a stream that was
recreated (or a token from another deployment) is caught instead of silently replaying
other events.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

_LAYOUT = struct.Struct(">Q6s")


class InvalidResumeToken(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ResumePoint:
    offset: int
    tag: bytes


def message_tag(message_id: str) -> bytes:
    return hashlib.blake2b(message_id.encode(), digest_size=6).digest()


def encode_token(offset: int, message_id: str) -> str:
    raw = _LAYOUT.pack(offset, message_tag(message_id))
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_token(token: object) -> ResumePoint:
    if not isinstance(token, str) or not token or len(token) > 64:
        raise InvalidResumeToken("resume_token must be a token received in a frame")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        offset, tag = _LAYOUT.unpack(raw)
    except (binascii.Error, struct.error, ValueError):
        raise InvalidResumeToken("resume_token is not a token this gateway issued") from None
    return ResumePoint(offset, tag)
