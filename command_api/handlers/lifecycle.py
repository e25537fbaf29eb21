"""Closing and reopening a talk, and marking it read."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from aiohttp import web

from command_api.domain.commands import CloseChat, MarkRead, ReopenChat
from command_api.execution import decide_chat_command
from command_api.http import execute
from command_api.marking import decide_mark_read, render_read
from command_api.newest import newest_message, projected_marker
from command_api.rendering import render_chat
from command_api.requests import MarkReadRequest
from events.catalogue import chat_stream, read_stream
from services.http.bodies import parse_model, read_json
from services.http.context import DATABASE
from services.http.middlewares import caller_of
from services.http.paths import path_uuid
from services.http.problems import Problem
from services.timefmt import utcnow


async def close_chat(request: web.Request) -> web.Response:
    chat_id = path_uuid(request, "chat_id")
    caller = caller_of(request)
    cmd = CloseChat(customer_id=caller.customer_id, actor_id=caller.agent_id, now=utcnow(),
                    chat_id=chat_id)
    return await execute(request, lambda s: decide_chat_command(s, cmd), render_chat,
                         serialise_on=chat_stream(chat_id))


async def reopen_chat(request: web.Request) -> web.Response:
    chat_id = path_uuid(request, "chat_id")
    caller = caller_of(request)
    cmd = ReopenChat(customer_id=caller.customer_id, actor_id=caller.agent_id, now=utcnow(),
                     chat_id=chat_id, participant_id=uuid4(), system_message_id=uuid4())
    return await execute(request, lambda s: decide_chat_command(s, cmd), render_chat,
                         serialise_on=chat_stream(chat_id))


async def mark_read(request: web.Request) -> web.Response:
    """``{"message_id"?}``; without it, the newest message the read tables know."""
    chat_id = path_uuid(request, "chat_id")
    data = await read_json(request)
    if not isinstance(data, dict):
        raise Problem(400, "the body must be a JSON object: {\"message_id\"?}")
    body = parse_model(MarkReadRequest, data, what="body")
    caller = caller_of(request)
    message_id: UUID | None = body.message_id
    if message_id is None:
        message_id = await newest_message(request.app[DATABASE], caller.customer_id, chat_id)
    cmd = MarkRead(customer_id=caller.customer_id, actor_id=caller.agent_id, now=utcnow(),
                   chat_id=chat_id, message_id=message_id)
    seen: dict[str, Any] = {"projected": await projected_marker(
        request.app[DATABASE], caller.customer_id, chat_id, caller.agent_id)}
    return await execute(request, lambda s: decide_mark_read(s, cmd, seen),
                         render_read(caller.agent_id, seen),
                         serialise_on=read_stream(chat_id, caller.agent_id))
