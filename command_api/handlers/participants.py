"""Adding and removing participants of a talk."""

from __future__ import annotations

from uuid import UUID, uuid4

from aiohttp import web

from command_api.domain.commands import AddParticipant, RemoveParticipant
from command_api.execution import decide_chat_command
from command_api.http import execute
from command_api.rendering import render_joined, render_left
from command_api.requests import AddParticipantRequest, AddTalkParticipantRequest
from events.catalogue import chat_stream
from services.http.bodies import read_body
from services.http.middlewares import caller_of
from services.http.paths import path_uuid
from services.timefmt import utcnow


async def _add(request: web.Request, chat_id: UUID, owner_type: str,
               owner_id: UUID) -> web.Response:
    caller = caller_of(request)
    cmd = AddParticipant(customer_id=caller.customer_id, actor_id=caller.agent_id, now=utcnow(),
                         chat_id=chat_id, owner_type=owner_type, owner_id=owner_id,
                         participant_id=uuid4(), system_message_id=uuid4())
    return await execute(request, lambda s: decide_chat_command(s, cmd), render_joined,
                         serialise_on=chat_stream(chat_id))


async def add_participant(request: web.Request) -> web.Response:
    chat_id = path_uuid(request, "chat_id")  # a malformed path is 404 before a bad body
    body = await read_body(request, AddParticipantRequest)
    return await _add(request, chat_id, body.owner_type, body.owner_id)


async def add_talk_participant(request: web.Request) -> web.Response:
    """``POST /v1.0/talks/{chat_id}/participants`` {agent_id} (the overview's short form)."""
    chat_id = path_uuid(request, "chat_id")
    body = await read_body(request, AddTalkParticipantRequest)
    return await _add(request, chat_id, "agent", body.agent_id)


async def remove_participant(request: web.Request) -> web.Response:
    chat_id = path_uuid(request, "chat_id")
    participant_id = path_uuid(request, "participant_id")
    caller = caller_of(request)
    cmd = RemoveParticipant(customer_id=caller.customer_id, actor_id=caller.agent_id, now=utcnow(),
                            chat_id=chat_id, participant_id=participant_id,
                            system_message_id=uuid4())
    return await execute(request, lambda s: decide_chat_command(s, cmd),
                         render_left(participant_id), serialise_on=chat_stream(chat_id))
