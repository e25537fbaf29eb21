"""The OpenAPI document against the routes that exist: every route the service registers is
documented with its method and every documented operation is served; the document is valid
OpenAPI 3.1; it is served without a token; its response models match what the service
renders."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest
from aiohttp.test_utils import TestClient, TestServer
from openapi_spec_validator import validate
from pydantic import ValidationError

from query_api.resources import chat_resource, message_resource, participant_resource
from services.openapi import (
    OPENAPI_PATH,
    Message,
    Participant,
    Talk,
    build_document,
    talk_routes,
)
from services.up import build_up_app

NOT_API = ("/livez", "/readyz", "/metrics", OPENAPI_PATH)
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _outside_document(path: str) -> bool:
    return path in NOT_API or path.startswith(("/v1.0/ws", "/v1.0/asyncapi"))


def registered_routes(app) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, as OpenAPI writes paths."""
    out = set()
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if route.method in METHODS and not _outside_document(path):
            out.add((route.method, path))
    return out


def documented_routes(document: dict) -> set[tuple[str, str]]:
    return {(method.upper(), path)
            for path, item in document["paths"].items() if not _outside_document(path)
            for method in item if method.upper() in METHODS}


@pytest.fixture(scope="module")
def document() -> dict:
    return build_document(talk_routes())


def test_every_registered_route_is_documented_and_vice_versa(settings, document):
    registered = registered_routes(build_up_app(settings))
    documented = documented_routes(document)
    assert registered, "the app registers no API route"
    assert registered - documented == set(), "routes missing from the OpenAPI document"
    assert documented - registered == set(), "documented operations the service does not serve"


def test_every_operation_is_described(document):
    undocumented = [f"{m.upper()} {p}" for p, item in document["paths"].items()
                    for m, op in item.items() if op.get("x-talk-undocumented")]
    assert undocumented == [], "give these routes an entry in services.openapi.OPERATIONS"
    ids = [op["operationId"] for item in document["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids)), "operationIds must be unique"


def test_path_parameters_are_uuids_and_match_the_path(document):
    for path, item in document["paths"].items():
        names = {seg[1:-1] for seg in path.split("/") if seg.startswith("{")}
        for method, op in item.items():
            params = {p["name"]: p for p in op.get("parameters", []) if p["in"] == "path"}
            assert set(params) == names, f"{method.upper()} {path}"
            for p in params.values():
                assert p["required"] is True
                assert p["schema"] == {"type": "string", "format": "uuid"}


def test_operations_declare_auth_errors_and_headers(document):
    for path, item in document["paths"].items():
        for method, op in item.items():
            if path == OPENAPI_PATH:
                assert op["security"] == []
                continue
            assert "security" not in op  # the document-wide bearer / ?token= applies
            problems = {s for s, r in op["responses"].items()
                        if "application/problem+json" in r.get("content", {})}
            assert {"400", "401", "404", "default"} <= problems, f"{method.upper()} {path}"
            headers = {p["name"] for p in op["parameters"] if p["in"] == "header"}
            if method == "get":
                # the audit reads read the event store, not the projection
                assert ("X-Talk-Min-Position" in headers) != path.startswith("/v1.0/audit")
                assert "503" in problems
            else:
                assert "X-Talk-Position" in op["responses"]["200"]["headers"]
                assert "409" in problems
            if "requestBody" in op:
                assert {"413", "415"} <= problems
            if method == "post":
                assert "Idempotency-Key" in headers and "422" in problems


def test_query_parameters_follow_the_request_models(document):
    listing = document["paths"]["/v1.0/service_agents/talk_messages"]["get"]
    params = {p["name"]: p for p in listing["parameters"] if p["in"] == "query"}
    assert set(params) == {"page_size", "page_token", "chat_id", "parent_id", "q"}
    assert params["page_size"]["schema"]["minimum"] == 1
    assert params["page_size"]["schema"]["maximum"] == 100
    assert params["chat_id"]["required"] is False  # without it: every talk of the caller
    assert params["q"]["schema"]["maxLength"] == 200
    assert params["parent_id"]["schema"] == {"anyOf": [  # "" is as if absent
        {"type": "string", "format": "uuid"}, {"type": "string", "maxLength": 0}]}
    short = document["paths"]["/v1.0/talks/{chat_id}/messages"]["get"]
    assert "chat_id" not in {p["name"] for p in short["parameters"] if p["in"] == "query"}
    unreact = document["paths"]["/v1.0/service_agents/talk_messages/{message_id}/reactions"]
    assert "emoji" in {p["name"] for p in unreact["delete"]["parameters"]}


def test_the_document_is_valid_openapi_3_1(document):
    assert document["openapi"].startswith("3.1")
    validate(document)  # raises OpenAPIValidationError


async def test_the_document_is_served_without_a_token(settings, document):
    client = TestClient(TestServer(build_up_app(settings)))
    await client.start_server()
    try:
        resp = await client.get(OPENAPI_PATH)
        assert resp.status == 200
        assert resp.content_type == "application/json"
        assert await resp.json() == document
        other = await client.get("/v1.0/service_agents/talk_chats")
        assert other.status == 401  # the rest still needs one
    finally:
        await client.close()


def test_response_models_match_the_rendered_resources():
    now = datetime(2024, 5, 1, 12, 30, 0, 123456, tzinfo=UTC)
    customer, chat_id, agent = uuid4(), uuid4(), uuid4()
    chat = {"id": chat_id, "customer_id": customer, "type": "group", "name": "n", "detail": "",
            "member_count": 2, "tm_create": now, "tm_update": None, "tm_delete": now}
    participant = {"id": uuid4(), "customer_id": customer, "chat_id": chat_id,
                   "owner_type": "agent", "owner_id": agent, "tm_joined": now}
    message = {"id": uuid4(), "customer_id": customer, "chat_id": chat_id, "parent_id": None,
               "owner_type": "agent", "owner_id": agent, "type": "normal", "text": "hi",
               "medias": [{"type": "image/png", "url": "https://x.test/a.png", "name": "a"}],
               "reactions": [{"emoji": "thumbsup", "owner_type": "agent",
                              "owner_id": str(agent), "tm_create": "2024-05-01 12:30:01.000001"}],
               "tm_create": now, "tm_update": now, "tm_delete": None,
               "reply_count": 2, "tm_last_reply": now}
    Talk.model_validate(chat_resource(chat))
    Participant.model_validate(participant_resource(participant))
    Message.model_validate(message_resource(message))
    Message.model_validate(message_resource({**message, "parent_id": uuid4()}))
    with pytest.raises(ValidationError):  # the models are strict: an unknown field fails
        Talk.model_validate({**chat_resource(chat), "extra": 1})


PROBLEMS = "https://talk.dev/problems/"


def _types(document: dict, path: str, method: str, status: str) -> set[str]:
    schema = document["paths"][path][method]["responses"][status]["content"][
        "application/problem+json"]["schema"]
    return {t.removeprefix(PROBLEMS) for t in schema["allOf"][1]["properties"]["type"]["enum"]}


def test_each_operation_lists_the_problem_types_it_answers(document):
    chats, messages = "/v1.0/service_agents/talk_chats", "/v1.0/service_agents/talk_messages"
    add = f"{chats}/{{chat_id}}/participants"
    assert {"already-participant", "talk-full", "too-many-members", "talk-deleted",
            "talk-closed"} <= _types(document, add, "post", "409")
    assert "message-deleted" not in _types(document, add, "post", "409")
    assert _types(document, add, "post", "403") == {"forbidden", "not-a-participant"}
    react = f"{messages}/{{message_id}}/reactions"
    assert {"too-many-reactions", "too-many-reactions-by-agent", "message-deleted"} <= _types(
        document, react, "post", "409")
    assert "not-the-author" in _types(document, f"{messages}/{{message_id}}", "put", "403")
    assert "parent-not-found" in _types(document, messages, "post", "404")
    assert _types(document, messages, "post", "422") == {"idempotency-key-reused"}
    description = document["paths"][add]["post"]["responses"]["409"]["description"]
    assert "`already-participant`" in description and "`talk-full`" in description
    # Every rule of the domain is answered by some operation.
    from command_api.domain.errors import PROBLEM_TYPES
    listed = {t for path, item in document["paths"].items() for method, op in item.items()
              for status in ("403", "404", "409", "422") if status in op.get("responses", {})
              for t in _types(document, path, method, status)}
    assert set(PROBLEM_TYPES) - {"invalid-input"} <= listed


def test_the_document_states_what_the_api_enforces(document):
    schemas = document["components"]["schemas"]
    assert schemas["UpdateChatRequest"]["anyOf"] == [
        {"required": ["name"], "properties": {"name": {"type": "string"}}},
        {"required": ["detail"], "properties": {"detail": {"type": "string"}}}]
    assert len(schemas["PostMessageRequest"]["anyOf"]) == 2  # a text, or attachments
    media = schemas["MediaRequest"]["properties"]
    assert media["url"]["pattern"].startswith("^[Hh][Tt][Tt][Pp]")
    assert media["type"]["pattern"] and media["name"]["pattern"] == "^[^\\x00]*$"
    assert schemas["ReactionRequest"]["properties"]["emoji"]["pattern"]
    listing = document["paths"]["/v1.0/service_agents/talk_messages"]["get"]
    token = next(p for p in listing["parameters"] if p["name"] == "page_token")
    assert token["schema"]["pattern"]
    unreact = document["paths"]["/v1.0/service_agents/talk_messages/{message_id}/reactions"]
    assert "requestBody" not in unreact["delete"]
    assert next(p for p in unreact["delete"]["parameters"] if p["name"] == "emoji")["required"]
    retry = listing["responses"]["503"]["headers"]["Retry-After"]
    assert retry["required"] is True
    for path in ("/v1.0/service_agents/talk_chats/{chat_id}",
                 "/v1.0/service_agents/talk_messages/{message_id}"):
        assert "soft delete" in document["paths"][path]["delete"]["description"]
    assert "/v1.0/audit/talk_chats/{chat_id}" in document["paths"]


def test_links_walk_from_a_created_talk_and_a_posted_message(document):
    created = document["paths"]["/v1.0/service_agents/talk_chats"]["post"]["responses"]["200"]
    targets = {link["operationId"] for link in created["links"].values()}
    assert {"getChat", "listParticipants", "listMessages", "addParticipant",
            "postMessage"} <= targets
    assert created["links"]["GetTalk"]["parameters"]["header.X-Talk-Min-Position"] == (
        "$response.header.X-Talk-Position")  # the read waits for the write
    posted = document["paths"]["/v1.0/service_agents/talk_messages"]["post"]["responses"]["200"]
    assert {"getMessage", "editMessage", "deleteMessage", "addReaction"} <= {
        link["operationId"] for link in posted["links"].values()}
    operation_ids = {op["operationId"] for item in document["paths"].values()
                     for op in item.values()}
    for item in document["paths"].values():
        for op in item.values():
            for link in op["responses"].get("200", {}).get("links", {}).values():
                assert link["operationId"] in operation_ids
