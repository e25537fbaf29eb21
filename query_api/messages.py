"""GET handlers for messages."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web
from pydantic import field_validator

from query_api.access import readable_chat
from query_api.context import READ_STORE
from query_api.pagination import PageQuery, page_envelope
from query_api.resources import message_resource
from services.http.bodies import parse_model, parse_query
from services.http.middlewares import caller_of
from services.http.paths import path_uuid
from services.http.problems import Problem
from services.http.responses import json_ok


class MessageListQuery(PageQuery):
    chat_id: UUID
    parent_id: UUID | None = None

    @field_validator("parent_id", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value


async def get_message(request: web.Request) -> web.Response:
    store = request.app[READ_STORE]
    caller = caller_of(request)
    message_id = path_uuid(request, "message_id")
    row = await store.message(caller.customer_id, message_id)
    if row is None:
        raise Problem(404, "no such message")
    await readable_chat(store, caller, row["chat_id"])
    return json_ok(message_resource(row))


async def list_messages(request: web.Request) -> web.Response:
    query = parse_query(request, MessageListQuery)
    return await _list(request, query)


async def list_talk_messages(request: web.Request) -> web.Response:
    """``GET /v1.0/talks/{chat_id}/messages`` (the overview's short form)."""
    data: dict[str, object] = dict(request.query)
    data["chat_id"] = path_uuid(request, "chat_id")
    query = parse_model(MessageListQuery, data, what="query")
    return await _list(request, query)


async def _list(request: web.Request, query: MessageListQuery) -> web.Response:
    store = request.app[READ_STORE]
    await readable_chat(store, caller_of(request), query.chat_id)
    rows = await store.messages(query.chat_id, query.parent_id, query.cursor, query.page_size + 1)
    items = [message_resource(r) for r in rows]
    return json_ok(page_envelope(items, rows, query.page_size))
