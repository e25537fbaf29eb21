"""Every route of the command API, in one table."""

from __future__ import annotations

from aiohttp import web

from command_api.handlers import chats, lifecycle, messages, participants, reactions

V = "/v1.0"
CHATS = f"{V}/service_agents/talk_chats"
MESSAGES = f"{V}/service_agents/talk_messages"

ROUTES: list[tuple[str, str, object]] = [
    ("POST", CHATS, chats.create_chat),
    ("PUT", f"{CHATS}/{{chat_id}}", chats.update_chat),
    ("DELETE", f"{CHATS}/{{chat_id}}", chats.delete_chat),
    ("POST", f"{CHATS}/{{chat_id}}/close", lifecycle.close_chat),
    ("POST", f"{CHATS}/{{chat_id}}/reopen", lifecycle.reopen_chat),
    ("POST", f"{CHATS}/{{chat_id}}/read", lifecycle.mark_read),
    ("POST", f"{CHATS}/{{chat_id}}/participants", participants.add_participant),
    ("DELETE", f"{CHATS}/{{chat_id}}/participants/{{participant_id}}", participants.remove_participant),
    ("POST", MESSAGES, messages.post_message),
    ("PUT", f"{MESSAGES}/{{message_id}}", messages.edit_message),
    ("DELETE", f"{MESSAGES}/{{message_id}}", messages.delete_message),
    ("POST", f"{MESSAGES}/{{message_id}}/reactions", reactions.add_reaction),
    ("DELETE", f"{MESSAGES}/{{message_id}}/reactions", reactions.remove_reaction),
    # The overview page's short forms.
    ("POST", f"{V}/talks", chats.create_talk),
    ("POST", f"{V}/talks/{{chat_id}}/participants", participants.add_talk_participant),
    ("DELETE", f"{V}/talks/{{chat_id}}/participants/{{participant_id}}", participants.remove_participant),
    ("POST", f"{V}/talks/{{chat_id}}/messages", messages.post_talk_message),
    ("POST", f"{V}/messages/{{message_id}}/reactions", reactions.add_reaction),
]


def add_command_routes(app: web.Application) -> None:
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, handler)
