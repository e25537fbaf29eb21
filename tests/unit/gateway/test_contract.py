"""The WebSocket contract (services/gateway/contract.py and its AsyncAPI document) says
everything the gateway can send: every error code the code uses, every close code it
closes with, every event type it delivers; and the document's references resolve."""

from __future__ import annotations

import re
from pathlib import Path

from events.catalogue import PUBLISHED_NAMES
from services.gateway import app, connections
from services.gateway.asyncapi import client_message_key, document, frame_key
from services.gateway.contract import CLIENT_MESSAGES, CLOSE_CODES, ERROR_CODES, SERVER_FRAMES

GATEWAY = Path(app.__file__).parent


def _codes_in_source() -> set[str]:
    """Error codes the gateway's code answers with (literal first arguments)."""
    found: set[str] = set()
    for path in GATEWAY.glob("*.py"):
        text = path.read_text()
        found |= set(re.findall(r'(?:self\.error|error_frame|TopicError)\(\s*"(\w+)"', text))
        found |= set(re.findall(r'verdicts\[chat_id\] = "(\w+)"', text))
        found |= set(re.findall(r'"(\w+)" if standing\.found else "(\w+)"', text)[0]
                     if "standing.found" in text else ())
        found |= set(re.findall(r'dict\.fromkeys\(pending, "(\w+)"\)', text))
    return found


def test_every_error_code_the_gateway_uses_is_in_the_contract():
    used = _codes_in_source()
    assert {"malformed_frame", "not_found", "rate_limited", "unavailable"} <= used
    assert used <= set(ERROR_CODES), used - set(ERROR_CODES)


def test_every_close_code_is_in_the_contract():
    closes = {connections.SLOW_CLIENT_CLOSE, connections.GOING_AWAY_CLOSE,
              connections.TOO_MANY_SOCKETS_CLOSE, app.TOKEN_EXPIRED_CLOSE_CODE}
    assert closes == set(CLOSE_CODES)


def test_every_published_event_has_a_frame():
    assert set(PUBLISHED_NAMES.values()) <= set(SERVER_FRAMES)


def test_the_documents_references_resolve():
    doc = document()

    def resolve(ref: str) -> object:
        node: object = doc
        for part in ref.removeprefix("#/").split("/"):
            assert isinstance(node, dict) and part in node, ref
            node = node[part]
        return node

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(doc)
    messages = doc["components"]["messages"]
    assert {client_message_key(n) for n in CLIENT_MESSAGES} | {
        frame_key(n) for n in SERVER_FRAMES} == set(messages)
    assert doc["asyncapi"] == "3.0.0"
