"""Schemathesis hooks for the contract run (tests/e2e/schemathesis.toml).

``X-Talk-Min-Position`` names a write the caller was answered; a well-formed value that no
write had is refused at once (400, query_api/consistency.py), which the document cannot
express, so a generated well-formed value becomes ``0`` ("no wait"). Malformed values (the
negative phase) are sent as generated and must be refused; the values links carry from a
command's ``X-Talk-Position`` are real and are kept.
"""

from __future__ import annotations

import re

import schemathesis

from events.position_token import PATTERN as POSITION_PATTERN

MIN_POSITION = "X-Talk-Min-Position"
_WELL_FORMED = re.compile(f"^{POSITION_PATTERN}( ?, ?{POSITION_PATTERN}){{0,31}}$")


@schemathesis.hook
def map_headers(ctx, headers):
    if headers:
        for name in list(headers):
            value = headers[name]
            if name.lower() == MIN_POSITION.lower() and isinstance(value, str) \
                    and _WELL_FORMED.search(value):
                headers[name] = "0"
    return headers
