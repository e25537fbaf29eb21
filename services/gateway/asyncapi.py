"""The AsyncAPI 3.0 document of the WebSocket gateway, generated from the models of
:mod:`services.gateway.contract`, served at ``GET /v1.0/asyncapi.json`` (no token needed)
by ``talk gateway`` and ``talk up``. ``python -m services.gateway.asyncapi`` prints it.

The application it describes is the gateway: it *receives* the client's messages and
*sends* frames. Close codes and error codes are listed in the info text and as the
``x-close-codes`` / ``x-error-codes`` extensions.
"""

from __future__ import annotations

import sys
from functools import cache
from typing import Any

import orjson
from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from services.gateway.contract import CLIENT_MESSAGES, CLOSE_CODES, ERROR_CODES, SERVER_FRAMES
from services.gateway.subscriptions import MAX_TOPICS

ASYNCAPI_PATH = "/v1.0/asyncapi.json"
WS_PATH = "/v1.0/ws"
SCHEMA_REF = "#/components/schemas/{model}"
WS_BINDING_VERSION = "0.1.0"

RESUME = (
    "**Resuming.** Every event frame carries a `resume_token`. Keep the last one; after a "
    "disconnect, reconnect and send `subscribe` with the same topics and `resume_token`: the "
    "events missed on those topics follow in order, once, then live ones, with no gap and no "
    "duplicate. If they cannot be replayed (the token is older than the stream's retention, "
    "of a recreated stream, or not issued by this deployment for this customer) one "
    "`resync_required` frame comes first and then live events: re-read the talks through the "
    "HTTP API. One resume runs per socket at a time (`resume_in_progress`)."
)

SUBSCRIBING = (
    "**Subscribing.** `subscribe` right after the command that created the talk or added the "
    "caller is accepted: the gateway waits (at most 2 s) for the read tables to catch up "
    "before it refuses a topic. Each topic is answered on its own: the accepted ones in one "
    "`subscribed` frame, each refused one in an `error` frame with its `topic`. A socket holds "
    f"at most {MAX_TOPICS} topics (refused ones count) and may check about 50 talks per "
    "second beyond a first 1,000 (`rate_limited`). Events are delivered only to current "
    "participants: a removed participant's socket stops receiving the talk's events from its "
    "`participant_left` on, and its next subscribe to the talk is `forbidden`."
)

TYPING = (
    "**Typing.** `{\"type\": \"typing\", \"chat_id\"}` from a participant reaches every other "
    "participant following the talk (its `chat:` topic or their `agent:` topic), on any "
    "gateway, within a second, as a `typing` frame; at most one per agent and talk every 2 s "
    "(extra ones are dropped silently). Typing frames carry no `resume_token`: they are "
    "never stored nor replayed."
)


def _described(codes: dict[Any, str]) -> str:
    return "; ".join(f"`{code}` {meaning}" for code, meaning in codes.items())


def _schemas() -> dict[str, Any]:
    models: list[type[BaseModel]] = [*CLIENT_MESSAGES.values(), *SERVER_FRAMES.values()]
    _, top = models_json_schema([(m, "validation") for m in models], ref_template=SCHEMA_REF)
    return dict(sorted(top["$defs"].items()))


def _message(name: str, model: type[BaseModel]) -> dict[str, Any]:
    return {
        "name": name,
        "title": name.replace("_", " "),
        "summary": " ".join((model.__doc__ or "").split()),
        "contentType": "application/json",
        "payload": {"$ref": SCHEMA_REF.format(model=model.__name__)},
    }


def client_message_key(name: str) -> str:
    return f"client_{name}"


def frame_key(name: str) -> str:
    return f"frame_{name}"


@cache
def document() -> dict[str, Any]:
    messages = {client_message_key(n): _message(n, m) for n, m in CLIENT_MESSAGES.items()}
    messages |= {frame_key(n): _message(n, m) for n, m in SERVER_FRAMES.items()}

    def refs(keys: list[str]) -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/socket/messages/{k}"} for k in keys]

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Talk WebSocket gateway",
            "version": "1.1.0",
            "description": "\n\n".join([
                f"Real-time delivery of Talk's events to agents: `GET {WS_PATH}?token=<JWT>` "
                "(or `Authorization: Bearer`; a bad token is answered 401 problem+json before "
                "the upgrade). Every message is a JSON text frame.",
                SUBSCRIBING, RESUME, TYPING,
                "**Error codes** (`error` frames; the socket stays open): "
                + _described(ERROR_CODES) + ".",
                "**Close codes**: " + _described(CLOSE_CODES) + ". A client should reconnect "
                "with a back-off (and its last `resume_token`) on 1001, 4001 and 4008.",
            ]),
            "x-error-codes": ERROR_CODES,
            "x-close-codes": {str(code): text for code, text in CLOSE_CODES.items()},
        },
        "defaultContentType": "application/json",
        "servers": {
            "gateway": {
                "host": "127.0.0.1:8083",
                "protocol": "ws",
                "pathname": WS_PATH,
                "description": "`talk gateway` (`TALK_GATEWAY_PORT`), or `talk up` on its "
                               "one port (8080 by default).",
            },
        },
        "channels": {
            "socket": {
                "address": WS_PATH,
                "title": "One agent's socket",
                "messages": {k: {"$ref": f"#/components/messages/{k}"} for k in messages},
                "bindings": {"ws": {
                    "method": "GET",
                    "query": {"type": "object", "properties": {"token": {
                        "type": "string", "description": "the API's JWT (claims customer_id, "
                                                        "agent_id, exp)"}}},
                    "bindingVersion": WS_BINDING_VERSION,
                }},
            },
        },
        "operations": {
            "receiveClientMessage": {
                "action": "receive",
                "channel": {"$ref": "#/channels/socket"},
                "summary": "What a client sends: subscribe, unsubscribe, typing.",
                "messages": refs([client_message_key(n) for n in CLIENT_MESSAGES]),
            },
            "sendFrame": {
                "action": "send",
                "channel": {"$ref": "#/channels/socket"},
                "summary": "What the gateway sends: acknowledgements, events, typing, "
                           "resync_required, errors.",
                "messages": refs([frame_key(n) for n in SERVER_FRAMES]),
            },
        },
        "components": {"messages": messages, "schemas": _schemas()},
    }


@cache
def render() -> bytes:
    return orjson.dumps(document(), option=orjson.OPT_INDENT_2) + b"\n"


async def serve_asyncapi(request: web.Request) -> web.Response:
    return web.Response(body=render(), content_type="application/json")


def main() -> int:
    sys.stdout.buffer.write(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
