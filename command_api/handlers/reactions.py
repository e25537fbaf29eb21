"""Adding and removing emoji reactions."""

from __future__ import annotations

from aiohttp import web

from command_api.domain.commands import AddReaction, RemoveReaction
from command_api.execution import decide_message_command
from command_api.http import execute
from command_api.rendering import render_message
from command_api.requests import ReactionRequest
from events.catalogue import message_stream
from query_api.threads import thread_summary
from services.http.bodies import parse_model, read_body, read_json
from services.http.context import DATABASE
from services.http.middlewares import caller_of
from services.http.paths import path_uuid
from services.timefmt import utcnow


async def add_reaction(request: web.Request) -> web.Response:
    message_id = path_uuid(request, "message_id")
    body = await read_body(request, ReactionRequest)
    caller = caller_of(request)
    cmd = AddReaction(customer_id=caller.customer_id, actor_id=caller.agent_id, now=utcnow(),
                      message_id=message_id, emoji=body.emoji)
    thread = await thread_summary(request.app[DATABASE], message_id)
    return await execute(request, lambda s: decide_message_command(s, cmd),
                         render_message(message_id, thread),
                         serialise_on=message_stream(message_id))


async def remove_reaction(request: web.Request) -> web.Response:
    """The emoji comes in the body or as ``?emoji=``."""
    message_id = path_uuid(request, "message_id")
    data = await read_json(request)
    if not isinstance(data, dict):
        data = {}
    if "emoji" not in data and "emoji" in request.query:
        data["emoji"] = request.query["emoji"]
    body = parse_model(ReactionRequest, data, what="body")
    caller = caller_of(request)
    cmd = RemoveReaction(customer_id=caller.customer_id, actor_id=caller.agent_id, now=utcnow(),
                         message_id=message_id, emoji=body.emoji)
    thread = await thread_summary(request.app[DATABASE], message_id)
    return await execute(request, lambda s: decide_message_command(s, cmd),
                         render_message(message_id, thread),
                         serialise_on=message_stream(message_id))
