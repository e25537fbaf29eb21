"""Posting, editing and deleting messages."""

from __future__ import annotations

from uuid import UUID, uuid4

from aiohttp import web

from command_api.domain.commands import DeleteMessage, EditMessage, PostMessage
from command_api.domain.errors import DomainError
from command_api.domain.rules import validate_medias
from command_api.execution import decide_message_command
from command_api.http import domain_problem, execute
from command_api.rendering import render_message
from command_api.requests import (
    EditMessageRequest,
    MediaRequest,
    PostMessageRequest,
    PostTalkMessageRequest,
)
from events.catalogue import message_stream
from query_api.threads import thread_summary
from services.http.bodies import read_body
from services.http.context import DATABASE
from services.http.middlewares import caller_of
from services.http.paths import path_uuid
from services.timefmt import utcnow


async def _post(request: web.Request, chat_id: UUID, type_: str, text: str,
                parent_id: UUID | None, medias: list[MediaRequest]) -> web.Response:
    caller = caller_of(request)
    try:
        media_values = validate_medias([m.model_dump() for m in medias])
    except DomainError as exc:
        raise domain_problem(exc) from None
    message_id = uuid4()
    cmd = PostMessage(customer_id=caller.customer_id, actor_id=caller.agent_id, now=utcnow(),
                      message_id=message_id, chat_id=chat_id, parent_id=parent_id, type=type_,
                      text=text, medias=media_values)
    return await execute(request, lambda s: decide_message_command(s, cmd), render_message(message_id))


async def post_message(request: web.Request) -> web.Response:
    body = await read_body(request, PostMessageRequest)
    return await _post(request, body.chat_id, body.type, body.text, body.parent_id, body.medias)


async def post_talk_message(request: web.Request) -> web.Response:
    """``POST /v1.0/talks/{chat_id}/messages`` (the overview's short form)."""
    chat_id = path_uuid(request, "chat_id")
    body = await read_body(request, PostTalkMessageRequest)
    return await _post(request, chat_id, body.type, body.text, body.parent_id, body.medias)


async def edit_message(request: web.Request) -> web.Response:
    message_id = path_uuid(request, "message_id")
    body = await read_body(request, EditMessageRequest)
    caller = caller_of(request)
    cmd = EditMessage(customer_id=caller.customer_id, actor_id=caller.agent_id, now=utcnow(),
                      message_id=message_id, text=body.text)
    thread = await thread_summary(request.app[DATABASE], message_id)
    return await execute(request, lambda s: decide_message_command(s, cmd),
                         render_message(message_id, thread),
                         serialise_on=message_stream(message_id))


async def delete_message(request: web.Request) -> web.Response:
    message_id = path_uuid(request, "message_id")
    caller = caller_of(request)
    cmd = DeleteMessage(customer_id=caller.customer_id, actor_id=caller.agent_id, now=utcnow(),
                        message_id=message_id)
    thread = await thread_summary(request.app[DATABASE], message_id)
    return await execute(request, lambda s: decide_message_command(s, cmd),
                         render_message(message_id, thread),
                         serialise_on=message_stream(message_id))
