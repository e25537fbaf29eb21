"""Event ids: UUIDv7 (RFC 9562), time-ordered.

An event id is the primary key of ``events``. Random (v4) ids land on random leaf pages of
that index, so every append dirties (and after each checkpoint, logs whole) a page of its
own; ids that grow with time land on the index's right edge, as ``position`` does. Event ids
are never shown as resource ids, so the creation time they carry tells nothing new.
"""

from __future__ import annotations

import os
import time
from uuid import UUID

_VERSION_7 = 0x7 << 76
_VARIANT_RFC = 0b10 << 62


def time_ordered_uuid() -> UUID:
    """48 bits of Unix time in milliseconds, version 7, then 74 random bits."""
    millis = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")  # 80 bits; 74 are used
    value = ((millis & 0xFFFF_FFFF_FFFF) << 80 | _VERSION_7 | ((rand >> 62) & 0xFFF) << 64
             | _VARIANT_RFC | (rand & 0x3FFF_FFFF_FFFF_FFFF))
    return UUID(int=value)
