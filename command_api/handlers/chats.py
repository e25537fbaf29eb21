"""POST/PUT/DELETE of talks."""

from __future__ import annotations

from uuid import UUID, uuid4

from aiohttp import web

from command_api.domain.commands import CreateChat, DeleteChat, NewParticipant, UpdateChat
from command_api.execution import decide_chat_command
from command_api.http import execute
from command_api.one_to_one import decide_create
from command_api.rendering import render_chat
from command_api.requests import CreateChatRequest, CreateTalkRequest, UpdateChatRequest
from events.catalogue import chat_stream
from services.http.bodies import read_body
from services.http.middlewares import caller_of
from services.http.paths import path_uuid
from services.timefmt import utcnow


def _create_command(request: web.Request, type_: str, name: str, detail: str,
                    members: list[tuple[str, UUID]]) -> CreateChat:
    caller = caller_of(request)
    return CreateChat(
        customer_id=caller.customer_id, actor_id=caller.agent_id, now=utcnow(),
        chat_id=uuid4(), type=type_, name=name, detail=detail,
        creator_participant_id=uuid4(), creator_system_message_id=uuid4(),
        participants=tuple(
            NewParticipant(owner_type=owner_type, owner_id=owner_id, participant_id=uuid4())
            for owner_type, owner_id in members
        ),
    )


async def _run_create(request: web.Request, cmd: CreateChat) -> web.Response:
    return await execute(request, lambda s: decide_create(s, cmd), render_chat)


async def create_chat(request: web.Request) -> web.Response:
    body = await read_body(request, CreateChatRequest)
    members = [(p.owner_type, p.owner_id) for p in body.participants]
    return await _run_create(request, _create_command(request, body.type, body.name, body.detail, members))


async def create_talk(request: web.Request) -> web.Response:
    """``POST /v1.0/talks`` {name, participant_ids} (the overview's short form)."""
    body = await read_body(request, CreateTalkRequest)
    members = [("agent", agent_id) for agent_id in body.participant_ids]
    return await _run_create(request, _create_command(request, body.type, body.name, body.detail, members))


async def update_chat(request: web.Request) -> web.Response:
    chat_id = path_uuid(request, "chat_id")
    body = await read_body(request, UpdateChatRequest)
    caller = caller_of(request)
    cmd = UpdateChat(customer_id=caller.customer_id, actor_id=caller.agent_id, now=utcnow(),
                     chat_id=chat_id, name=body.name, detail=body.detail)
    return await execute(request, lambda s: decide_chat_command(s, cmd), render_chat,
                         serialise_on=chat_stream(chat_id))


async def delete_chat(request: web.Request) -> web.Response:
    chat_id = path_uuid(request, "chat_id")
    caller = caller_of(request)
    cmd = DeleteChat(customer_id=caller.customer_id, actor_id=caller.agent_id, now=utcnow(),
                     chat_id=chat_id)
    return await execute(request, lambda s: decide_chat_command(s, cmd), render_chat,
                         serialise_on=chat_stream(chat_id))
