"""The OpenAPI 3.1 document of the Talk API (command and query APIs, one document), served
at ``GET /v1.0/openapi.json`` without authentication.

It is generated, not written: the paths come from the route tables
(``command_api.routes.ROUTES`` and ``query_api.routes.ROUTES``) so it cannot miss a route;
request bodies and query strings come from the pydantic models the handlers parse them with;
answers from the resource models of :mod:`services.http.models`. ``OPERATIONS`` says,
per route, which models apply; a route without an entry still appears, marked
``x-talk-undocumented`` (a test refuses that).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from command_api import requests as rq
from command_api.domain import rules
from command_api.http import POSITION_HEADER
from command_api.idempotency import HEADER as IDEMPOTENCY_HEADER
from command_api.idempotency import KEY_PATTERN
from events.position_token import PATTERN as POSITION_PATTERN
from query_api.chats import ChatListQuery
from query_api.consistency import HEADER as MIN_POSITION_HEADER
from query_api.messages import MessageListQuery
from query_api.pagination import TOKEN_PATTERN
from services.http.middlewares import CORRELATION_ID_HEADER
from services.http.models import (
    RESPONSE_MODELS,
    AuditedMessageHistory,
    Message,
    MessageHistory,
    MessageList,
    Participant,
    ParticipantList,
    Talk,
    TalkAtMoment,
    TalkList,
)
from services.http.problems import PROBLEM_JSON, TITLES
from services.openapi_links import links_of
from services.openapi_problems import describe, type_schema

OPENAPI_PATH = "/v1.0/openapi.json"
REQUEST_ID_HEADER = "X-Request-ID"
REF = "#/components/schemas/{model}"

# --- what each route takes and answers -----------------------------------------------------

COMMAND_ERRORS = (400, 401, 403, 404, 409, 503)  # 503: Postgres away, or a commit cut off
BODY_ERRORS = (413, 415)  # too large, not JSON: where a body is read
QUERY_ERRORS = (400, 401, 403, 404, 503)


@dataclass(frozen=True)
class Operation:
    operation_id: str
    summary: str
    tag: str
    answer: type[BaseModel]
    body: type[BaseModel] | None = None
    body_required: bool = True
    query: type[BaseModel] | None = None
    query_exclude: frozenset[str] = frozenset()
    extra_query: tuple[dict[str, Any], ...] = ()
    errors: tuple[int, ...] = COMMAND_ERRORS
    description: str = ""


V = "/v1.0"
CHATS = f"{V}/service_agents/talk_chats"
MESSAGES = f"{V}/service_agents/talk_messages"

EMOJI_QUERY = {"name": "emoji", "in": "query", "required": True,
               "description": "the emoji to remove",
               "schema": {"type": "string", "minLength": 1, "maxLength": rules.EMOJI_MAX,
                          "pattern": rules.EMOJI_PATTERN}}
AT_QUERY = {"name": "at", "in": "query", "required": False,
            "description": "a position of the event store (digits), or a UTC timestamp "
                           "(`YYYY-MM-DD HH:MM:SS.ffffff` or ISO 8601); default: now",
            "schema": {"type": "string", "minLength": 1, "maxLength": 64}}

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("POST", CHATS): Operation(
        "createChat", "Create a talk; the caller joins it", "talks", Talk, rq.CreateChatRequest,
        description="A `normal` talk holds at most 2 participants. A `normal` talk with "
        "exactly one other agent answers the pair's active normal talk if there is one "
        "(appending nothing)."),
    ("GET", CHATS): Operation(
        "listChats", "Talks the caller is in (not deleted), newest first", "talks", TalkList,
        query=ChatListQuery, errors=QUERY_ERRORS),
    ("GET", f"{CHATS}/{{chat_id}}"): Operation(
        "getChat", "A talk (participants only)", "talks", Talk, errors=QUERY_ERRORS),
    ("PUT", f"{CHATS}/{{chat_id}}"): Operation(
        "updateChat", "Change a talk's name and/or detail (one at least)", "talks", Talk,
        rq.UpdateChatRequest),
    ("DELETE", f"{CHATS}/{{chat_id}}"): Operation(
        "deleteChat", "Soft-delete a talk (sets tm_delete)", "talks", Talk,
        description="A soft delete: the talk keeps answering `GET` (200, `tm_delete` set) and "
                    "its participants and messages to its participants, leaves their lists "
                    "of talks, and refuses every change (409 `talk-deleted`)."),
    ("POST", f"{CHATS}/{{chat_id}}/close"): Operation(
        "closeChat", "Close a talk (`status` `closed`); closing a closed talk is a no-op",
        "talks", Talk, description="A closed talk refuses posting, editing, reacting and "
        "adding participants (409 `talk-closed`); every read works. A talk also closes by "
        "itself when its last participant leaves."),
    ("POST", f"{CHATS}/{{chat_id}}/reopen"): Operation(
        "reopenChat", "Reopen a closed talk (`status` `active`)", "talks", Talk,
        description="Allowed to its participants and to anyone who was one when it closed; "
        "if nobody is left, the caller rejoins. Reopening an active talk is a no-op."),
    ("POST", f"{CHATS}/{{chat_id}}/read"): Operation(
        "markChatRead", "Move the caller's read marker (answers the caller's participant)",
        "talks", Participant, rq.MarkReadRequest, body_required=False,
        description="`message_id` defaults to the talk's newest message. The marker never "
        "moves back: a message at or before it changes nothing. Posting also moves the "
        "author's marker to the new message. Published as `chat_read` to the reader alone."),
    ("GET", f"{CHATS}/{{chat_id}}/participants"): Operation(
        "listParticipants", "The participants of a talk", "participants", ParticipantList,
        errors=QUERY_ERRORS),
    ("POST", f"{CHATS}/{{chat_id}}/participants"): Operation(
        "addParticipant", "Add an agent to a talk", "participants", Participant,
        rq.AddParticipantRequest,
        description="409 if the agent is already in, or if a normal talk is full."),
    ("DELETE", f"{CHATS}/{{chat_id}}/participants/{{participant_id}}"): Operation(
        "removeParticipant", "Remove a participant (answers the removed participant)",
        "participants", Participant),
    ("POST", MESSAGES): Operation(
        "postMessage", "Post a message (participants only)", "messages", Message,
        rq.PostMessageRequest),
    ("GET", MESSAGES): Operation(
        "listMessages", "A talk's messages, one thread's replies, or those of every talk the "
        "caller is in; or search them (`q`); newest first", "messages",
        MessageList, query=MessageListQuery, errors=QUERY_ERRORS,
        description="Deleted messages appear as tombstones (search never finds them). "
                    "Without `chat_id`: the messages of every talk the caller is in and that "
                    "is not deleted. `q`: the messages whose current text holds every word of "
                    "`q`, whole or as the start of a word, whatever the case and accents; "
                    "400 when `q` holds no letter or digit."),
    ("GET", f"{MESSAGES}/{{message_id}}"): Operation(
        "getMessage", "A message (participants only)", "messages", Message, errors=QUERY_ERRORS),
    ("GET", f"{MESSAGES}/{{message_id}}/history"): Operation(
        "getMessageHistory", "Every version of a message's text, oldest first (participants "
        "only)", "messages", MessageHistory, errors=QUERY_ERRORS,
        description="The posted text with its `tm_create`, then each edit's with its time. "
                    "A deleted message has none left (`result` is empty)."),
    ("PUT", f"{MESSAGES}/{{message_id}}"): Operation(
        "editMessage", "Edit a message's text (author only)", "messages", Message,
        rq.EditMessageRequest),
    ("DELETE", f"{MESSAGES}/{{message_id}}"): Operation(
        "deleteMessage", "Soft-delete a message (author only)", "messages", Message,
        description="A soft delete: the message keeps answering `GET` (200) as a tombstone "
                    "(`tm_delete` set, `text` and `medias` empty), its replies keep their "
                    "thread, and it refuses changes (409 `message-deleted`). Deleting it "
                    "again is a no-op."),
    ("POST", f"{MESSAGES}/{{message_id}}/reactions"): Operation(
        "addReaction", "React to a message", "reactions", Message, rq.ReactionRequest),
    ("DELETE", f"{MESSAGES}/{{message_id}}/reactions"): Operation(
        "removeReaction", "Remove the caller's own reaction", "reactions", Message,
        extra_query=(EMOJI_QUERY,),
        description="The emoji may come in a JSON body `{\"emoji\": ...}` instead of the "
                    "query (VoIPBIN clients send it so); the query wins when both are sent. "
                    "Removing a reaction that is not there is a no-op."),
    # Auditors (a token with "roles": ["audit"]): from the event store, at any moment.
    ("GET", f"{V}/audit/talk_chats/{{chat_id}}"): Operation(
        "getTalkAt", "A talk as it was at a moment (auditors of its customer)", "audit",
        TalkAtMoment, extra_query=(AT_QUERY,), errors=QUERY_ERRORS,
        description="Read from the event store, not the read tables: the talk, its "
                    "participants and messages as they were at `at` (a position or a time). "
                    "403 `not-an-auditor` without the role; 503 while a transaction that may "
                    "still commit before that moment is open."),
    ("GET", f"{V}/audit/talk_messages/{{message_id}}/history"): Operation(
        "getMessageEvents", "Every event of a message, oldest first (auditors)", "audit",
        AuditedMessageHistory, errors=QUERY_ERRORS,
        description="Each event of the message's stream with who did it, when, and the "
                    "message as it stood after it."),
    # The overview page's short forms.
    ("POST", f"{V}/talks"): Operation(
        "createTalk", "Create a talk (short form)", "short forms", Talk, rq.CreateTalkRequest),
    ("POST", f"{V}/talks/{{chat_id}}/participants"): Operation(
        "addTalkParticipant", "Add an agent to a talk (short form)", "short forms",
        Participant, rq.AddTalkParticipantRequest),
    ("DELETE", f"{V}/talks/{{chat_id}}/participants/{{participant_id}}"): Operation(
        "removeTalkParticipant", "Remove a participant (short form)", "short forms",
        Participant),
    ("POST", f"{V}/talks/{{chat_id}}/messages"): Operation(
        "postTalkMessage", "Post a message (short form)", "short forms", Message,
        rq.PostTalkMessageRequest),
    ("GET", f"{V}/talks/{{chat_id}}/messages"): Operation(
        "listTalkMessages", "A talk's messages, newest first (short form)", "short forms",
        MessageList, query=MessageListQuery, query_exclude=frozenset({"chat_id"}),
        errors=QUERY_ERRORS),
    ("POST", f"{V}/messages/{{message_id}}/reactions"): Operation(
        "addMessageReaction", "React to a message (short form)", "short forms", Message,
        rq.ReactionRequest),
}

# --- building the document -----------------------------------------------------------------

_PATH_PARAM = re.compile(r"{([^}:]+)(?::[^}]*)?}")


def talk_routes() -> list[tuple[str, str]]:
    """(method, path) of every API route, from the two route tables."""
    # Imported here: query_api.routes imports this module to serve the document.
    from command_api.routes import ROUTES as COMMAND_ROUTES
    from query_api.routes import AUDIT_ROUTES
    from query_api.routes import ROUTES as QUERY_ROUTES

    return [(method, path) for method, path, _ in [*COMMAND_ROUTES, *QUERY_ROUTES,
                                                   *AUDIT_ROUTES]]


# What the domain rules (command_api/domain/rules.py) add to the request models' types: the
# request models check types only, the domain checks meaning, and a client should see both.
_TYPE = {"enum": list(rules.CHAT_TYPES)}
_NUL_FREE = {"pattern": rules.NUL_FREE_PATTERN}  # Postgres cannot store NUL
_NAME = {"maxLength": rules.NAME_MAX, **_NUL_FREE}
_DETAIL = {"maxLength": rules.DETAIL_MAX, **_NUL_FREE}
_TEXT = {"maxLength": rules.TEXT_MAX, **_NUL_FREE,
         "description": f"at most {rules.TEXT_MAX:,} characters; required unless `medias` "
                        "is not empty"}
_EMOJI = {"minLength": 1, "maxLength": rules.EMOJI_MAX, "pattern": rules.EMOJI_PATTERN,
          "description": "a Unicode emoji (sequence) or a short name such as `thumbsup`"}
REQUEST_RULES: dict[tuple[str, str], dict[str, Any]] = {
    ("CreateChatRequest", "type"): _TYPE,
    ("CreateChatRequest", "name"): _NAME,
    ("CreateChatRequest", "detail"): _DETAIL,
    ("CreateTalkRequest", "type"): _TYPE,
    ("CreateTalkRequest", "name"): _NAME,
    ("CreateTalkRequest", "detail"): _DETAIL,
    ("UpdateChatRequest", "name"): _NAME,
    ("UpdateChatRequest", "detail"): _DETAIL,
    ("ParticipantRef", "owner_type"): {"enum": ["agent"]},
    ("AddParticipantRequest", "owner_type"): {"enum": ["agent"]},
    ("PostMessageRequest", "type"): {"enum": ["normal"], "description": "agents post `normal`"},
    ("PostMessageRequest", "text"): _TEXT,
    ("PostMessageRequest", "medias"): {"maxItems": rules.MEDIAS_MAX},
    ("PostTalkMessageRequest", "type"): {"enum": ["normal"]},
    ("PostTalkMessageRequest", "text"): _TEXT,
    ("PostTalkMessageRequest", "medias"): {"maxItems": rules.MEDIAS_MAX},
    ("MediaRequest", "type"): {"maxLength": rules.MEDIA_TYPE_MAX, "pattern": rules.MIME_PATTERN,
                               "description": "a MIME type such as image/png"},
    ("MediaRequest", "url"): {"maxLength": rules.MEDIA_URL_MAX, "pattern": rules.URL_PATTERN,
                              "description": "an http(s) URL: a host of letters, digits, dots "
                                             "and dashes, an optional port, then a path, query "
                                             "or fragment without spaces or control characters"},
    ("MediaRequest", "name"): {"maxLength": rules.MEDIA_NAME_MAX, **_NUL_FREE},
    ("EditMessageRequest", "text"): _TEXT,
    ("ReactionRequest", "emoji"): _EMOJI,
}


def _refine(prop: dict[str, Any], extra: dict[str, Any]) -> None:
    """Add ``extra`` to a property, or to its non-null branches when it is nullable."""
    branches = [b for b in prop.get("anyOf", ()) if b != {"type": "null"}]
    for target in branches or [prop]:
        target.update({k: v for k, v in extra.items() if k != "description" or not branches})
    if "description" in extra:
        prop["description"] = extra["description"]


def _schemas() -> dict[str, Any]:
    models: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (m, "serialization") for m in RESPONSE_MODELS]
    inputs = {op.body for op in OPERATIONS.values() if op.body is not None}
    models += [(m, "validation") for m in sorted(inputs, key=lambda m: m.__name__)]
    _, top = models_json_schema(models, ref_template=REF)
    schemas = top.get("$defs", {})
    for (model, name), extra in REQUEST_RULES.items():
        prop = schemas.get(model, {}).get("properties", {}).get(name)
        if prop is not None:  # a renamed field loses its refinement, not the document
            _refine(prop, extra)
    _cross_field_rules(schemas)
    return schemas


_EMPTY_STRING = {"type": "string", "maxLength": 0}


def _cross_field_rules(schemas: dict[str, Any]) -> None:
    """Rules between fields, as the domain checks them: a talk's update names `name` or
    `detail` (not null); a message has a text that is not blank, or attachments; an id that
    may be empty (`parent_id`, `message_id`) accepts `""` as unset."""
    def non_null(name: str) -> dict[str, Any]:
        return {"required": [name], "properties": {name: {"type": "string"}}}

    if "UpdateChatRequest" in schemas:
        schemas["UpdateChatRequest"]["anyOf"] = [non_null("name"), non_null("detail")]
    for model in ("PostMessageRequest", "PostTalkMessageRequest"):
        if model in schemas:
            schemas[model]["anyOf"] = [
                {"required": ["text"], "properties": {
                    "text": {"type": "string", "pattern": rules.NOT_BLANK_PATTERN}}},
                {"required": ["medias"], "properties": {
                    "medias": {"type": "array", "minItems": 1}}}]
    for model, name in (("PostMessageRequest", "parent_id"), ("PostTalkMessageRequest",
                        "parent_id"), ("MarkReadRequest", "message_id")):
        prop = schemas.get(model, {}).get("properties", {}).get(name)
        if prop is not None and "anyOf" in prop:
            prop["anyOf"].append(dict(_EMPTY_STRING))


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter is absent rather than null: drop the null branch and default."""
    schema = {k: v for k, v in schema.items() if k != "title"}
    if schema.get("default", ...) is None:
        del schema["default"]
    branches = schema.get("anyOf")
    if branches:
        rest = [b for b in branches if b != {"type": "null"}]
        if len(rest) == 1:
            del schema["anyOf"]
            schema.update(rest[0])
        else:
            schema["anyOf"] = rest
    return schema


# Query parameters whose models take more than their types say: `""` meaning unset, and
# what the handlers check (query_api/messages.py, pagination.py).
_EMPTY_IS_UNSET = frozenset({"chat_id", "parent_id"})
_Q_PATTERN = r"^(?![\s\S]*\x00)(?:$|[\s\S]*[^\W_])"  # empty, or a letter or digit; no NUL


def _query_rule(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    if name in _EMPTY_IS_UNSET and schema.get("format") == "uuid":
        return {"anyOf": [schema, dict(_EMPTY_STRING)]}
    if name == "q":
        return {**schema, "pattern": _Q_PATTERN}
    if name == "page_token":
        return {**schema, "pattern": TOKEN_PATTERN,
                "description": "`\"\"` (the first page), a `next_page_token` this service "
                               "answered, or a bare timestamp in the API format (strictly "
                               "before that instant)"}
    return schema


def _query_parameters(op: Operation) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = []
    if op.query is not None:
        schema = op.query.model_json_schema()
        required = set(schema.get("required", ()))
        for name, prop in schema.get("properties", {}).items():
            if name in op.query_exclude:
                continue
            param: dict[str, Any] = {"name": name, "in": "query", "required": name in required,
                                     "schema": _query_rule(name, _without_null(prop))}
            if "description" in prop:
                param["description"] = prop["description"]
            params.append(param)
    params += [dict(p) for p in op.extra_query]
    return params


def _path_parameters(path: str) -> list[dict[str, Any]]:
    return [{"name": name, "in": "path", "required": True,
             "schema": {"type": "string", "format": "uuid"}}
            for name in _PATH_PARAM.findall(path)]


_CORRELATION_ID = {
    "name": CORRELATION_ID_HEADER, "in": "header", "required": False,
    "description": "kept in the metadata of every event the request appends (default: the "
                   "request id); 400 if malformed",
    "schema": {"type": "string", "pattern": "^([A-Za-z0-9._:-]{1,128})?$"}}


def _header_parameters(method: str) -> list[dict[str, Any]]:
    if method == "GET":
        return [{"name": MIN_POSITION_HEADER, "in": "header", "required": False,
                 "description": "wait (a bounded time) until the read side has applied every "
                                f"write up to this `{POSITION_HEADER}` (send the greatest you "
                                "hold, or several comma-separated; they compare as strings "
                                "or integers in the order the read side applies writes); "
                                "503 with Retry-After if it has not; 400 at once for a value "
                                "no command answered. A bare event `position` (below "
                                "10^19) names that event alone",
                 "schema": {"type": "string", "pattern": f"^{POSITION_PATTERN}( ?, ?"
                                                         f"{POSITION_PATTERN}){{0,31}}$"}},
                _CORRELATION_ID]
    if method == "POST":
        return [{"name": IDEMPOTENCY_HEADER, "in": "header", "required": False,
                 "description": "a retry with the same key (same caller, within 24 hours) "
                                "answers the first response; the same key with another body: "
                                "422",
                 "schema": {"type": "string", "pattern": KEY_PATTERN}}, _CORRELATION_ID]
    return [_CORRELATION_ID]


def _problem_response(status: int, operation_id: str | None = None) -> dict[str, Any]:
    """A problem answer; its description lists the types ``operation_id`` may answer, and for
    403/404/409/422 its schema allows only those (services/openapi_problems.py)."""
    schema: dict[str, Any] = {"$ref": REF.format(model="Problem")}
    if (types := type_schema(operation_id, status)) is not None:
        schema = {"allOf": [schema, {"properties": {"type": types}}]}
    response: dict[str, Any] = {
        "description": describe(operation_id, status, TITLES.get(status, "Error")),
        "content": {PROBLEM_JSON: {"schema": schema}},
    }
    headers = {REQUEST_ID_HEADER: {"$ref": "#/components/headers/RequestId"}}
    if status == 401:
        headers["WWW-Authenticate"] = {"schema": {"type": "string"}}
    if status == 503:
        headers["Retry-After"] = {"schema": {"type": "string", "pattern": "^[0-9]+$"},
                                  "required": True,
                                  "description": "seconds after which to retry"}
        response["description"] = (
            "Service Unavailable: a dependency (Postgres) is unreachable (`type` "
            "`.../service-unavailable`), the projection has not reached `X-Talk-Min-Position`"
            " in time, or a write's commit was cut off (`.../commit-outcome-unknown`: it may or"
            " may not be stored; retry with the same Idempotency-Key)")
    response["headers"] = headers
    return response


def _operation(method: str, path: str, op: Operation | None) -> dict[str, Any]:
    params = _path_parameters(path)
    if op is None:
        return {"summary": "undocumented route", "x-talk-undocumented": True,
                "parameters": params,
                "responses": {"default": _problem_response(500) | {"description": "any answer"}}}
    params += _query_parameters(op) + [
        p for p in _header_parameters(method)  # the audit reads do not read the projection
        if not (op.tag == "audit" and p["name"] == MIN_POSITION_HEADER)]
    headers: dict[str, Any] = {REQUEST_ID_HEADER: {"$ref": "#/components/headers/RequestId"}}
    if method != "GET":
        headers[POSITION_HEADER] = {"$ref": "#/components/headers/Position"}
    errors = set(op.errors)
    if op.body is not None:
        errors.update(BODY_ERRORS)
    if method == "POST":
        errors.add(422)  # an Idempotency-Key reused with another request
    errors.add(400)  # a malformed header (X-Correlation-ID, Idempotency-Key, X-Talk-Min-Position)
    out: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "parameters": params,
        "responses": {
            "200": {"description": "OK", "headers": headers, "content": {
                "application/json": {"schema": {"$ref": REF.format(model=op.answer.__name__)}}}},
            **{str(s): _problem_response(s, op.operation_id) for s in sorted(errors)},
            "default": _problem_response(500) | {"description": "another problem"},
        },
    }
    if op.description:
        out["description"] = op.description
    if op.body is not None:
        out["requestBody"] = {"required": op.body_required, "content": {
            "application/json": {"schema": {"$ref": REF.format(model=op.body.__name__)}}}}
    return out


def build_document(routes: list[tuple[str, str]]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for these (method, path) routes."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path in routes:
        openapi_path = _PATH_PARAM.sub(lambda m: "{" + m.group(1) + "}", path)
        paths.setdefault(openapi_path, {})[method.lower()] = _operation(
            method, path, OPERATIONS.get((method, path)))
    operations = [op for item in paths.values() for op in item.values()]
    known = {op["operationId"] for op in operations if "operationId" in op}
    for op in operations:
        if links := links_of(op.get("operationId", ""), known):
            op["responses"]["200"]["links"] = links
    paths[OPENAPI_PATH] = {"get": {
        "operationId": "getOpenApiDocument", "summary": "This document", "tags": ["meta"],
        "security": [],
        "responses": {"200": {"description": "OK", "content": {
            "application/json": {"schema": {"type": "object"}}}}}}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Talk API",
            "version": "1.0",
            "description": "Talks, participants, messages, threads and reactions of a "
                           "contact-center platform (VoIPBIN-compatible). Commands answer "
                           f"the resource after them with `{POSITION_HEADER}`; queries read "
                           "the projection and honour `X-Talk-Min-Position`. Errors are "
                           "`application/problem+json` (RFC 9457).",
        },
        "security": [{"bearer": []}, {"token": []}],
        "tags": [{"name": t} for t in
                 ("talks", "participants", "messages", "reactions", "short forms", "audit",
                  "meta")],
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                           "description": "HS256 JWT with claims customer_id, agent_id, exp"},
                "token": {"type": "apiKey", "in": "query", "name": "token",
                          "description": "the same JWT as `?token=`"},
            },
            "headers": {
                "RequestId": {"description": "the request's id (also in problem answers)",
                              "schema": {"type": "string"}},
                "Position": {"description": "where the command's last write stands in the "
                                            "order the read side applies writes (39 digits: "
                                            "two compare as strings or integers in that "
                                            f"order); send it as `{MIN_POSITION_HEADER}` to "
                                            "read your write",
                             "schema": {"type": "string", "pattern": f"^{POSITION_PATTERN}$"}},
            },
        },
    }


@functools.cache
def talk_openapi_json() -> bytes:
    """The served document (built once per process: it depends on code only)."""
    return orjson.dumps(build_document(talk_routes()))


async def serve_openapi(request: web.Request) -> web.Response:
    return web.Response(body=talk_openapi_json(), content_type="application/json")
