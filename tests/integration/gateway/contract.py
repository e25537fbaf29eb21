"""Checking frames against the gateway's published contract (its AsyncAPI document): each
frame must match the schema of the frame type it names."""

from __future__ import annotations

from functools import cache
from typing import Any

import jsonschema

from services.gateway.asyncapi import document, frame_key


@cache
def _validator(frame_type: str) -> jsonschema.Draft202012Validator:
    doc = document()
    message = doc["components"]["messages"].get(frame_key(frame_type))
    assert message is not None, f"frame type {frame_type!r} is not in the AsyncAPI document"
    # The whole document is the root, so the payload's "#/components/schemas/..." refs resolve.
    return jsonschema.Draft202012Validator({**doc, "$ref": message["payload"]["$ref"]})


def validate_frame(frame: Any) -> None:
    assert isinstance(frame, dict) and isinstance(frame.get("type"), str), frame
    errors = sorted(_validator(frame["type"]).iter_errors(frame), key=str)
    assert not errors, f"frame {frame} breaks the contract: {[e.message for e in errors]}"
