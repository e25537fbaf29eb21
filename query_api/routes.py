"""Every route of the query API, in one table."""

from __future__ import annotations

from aiohttp import web

from query_api import audit, chats, message_history, messages
from query_api.consistency import with_min_position
from services.openapi import OPENAPI_PATH, serve_openapi

V = "/v1.0"

ROUTES: list[tuple[str, str, object]] = [
    ("GET", f"{V}/service_agents/talk_chats", chats.list_chats),
    ("GET", f"{V}/service_agents/talk_chats/{{chat_id}}", chats.get_chat),
    ("GET", f"{V}/service_agents/talk_chats/{{chat_id}}/participants", chats.list_participants),
    ("GET", f"{V}/service_agents/talk_messages", messages.list_messages),
    ("GET", f"{V}/service_agents/talk_messages/{{message_id}}", messages.get_message),
    ("GET", f"{V}/service_agents/talk_messages/{{message_id}}/history",
     message_history.get_message_history),
    # The overview page's short forms.
    ("GET", f"{V}/talks/{{chat_id}}/messages", messages.list_talk_messages),
]

# Auditors (role "audit"): read from the event store, at any moment (query_api/audit.py).
AUDIT_ROUTES: list[tuple[str, str, object]] = [
    ("GET", f"{V}/audit/talk_chats/{{chat_id}}", audit.get_talk_at),
    ("GET", f"{V}/audit/talk_messages/{{message_id}}/history", audit.get_message_history),
]


def add_query_routes(app: web.Application) -> None:
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, with_min_position(handler))
    for method, path, handler in AUDIT_ROUTES:
        app.router.add_route(method, path, handler)
    app.router.add_get(OPENAPI_PATH, serve_openapi)  # public: the OpenAPI document
