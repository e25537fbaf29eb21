"""Every route of the query API, in one table."""

from __future__ import annotations

from aiohttp import web

from query_api import chats, messages
from query_api.consistency import with_min_position

V = "/v1.0"

ROUTES: list[tuple[str, str, object]] = [
    ("GET", f"{V}/service_agents/talk_chats", chats.list_chats),
    ("GET", f"{V}/service_agents/talk_chats/{{chat_id}}", chats.get_chat),
    ("GET", f"{V}/service_agents/talk_chats/{{chat_id}}/participants", chats.list_participants),
    ("GET", f"{V}/service_agents/talk_messages", messages.list_messages),
    ("GET", f"{V}/service_agents/talk_messages/{{message_id}}", messages.get_message),
    # The overview page's short forms.
    ("GET", f"{V}/talks/{{chat_id}}/messages", messages.list_talk_messages),
]


def add_query_routes(app: web.Application) -> None:
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, with_min_position(handler))
