"""GET handlers for messages: one, a talk's (or a thread's) list, the list of every talk the
caller is in, search (``q``) and a message's edit history."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web
from pydantic import Field, field_validator

from query_api.access import readable_chat, readable_messages
from query_api.context import READ_STORE
from query_api.message_search import MessageSearch
from query_api.pagination import PageQuery, page_envelope
from query_api.resources import message_resource
from services.http.bodies import parse_model, parse_query
from services.http.middlewares import caller_of
from services.http.paths import path_uuid
from services.http.problems import Problem
from services.http.responses import json_ok

MAX_QUERY_LENGTH = 200


class MessageListQuery(PageQuery):
    chat_id: UUID | None = Field(
        default=None, description="the talk; without it, every talk the caller is in (not "
                                  "deleted), newest first")
    parent_id: UUID | None = None
    q: str | None = Field(
        default=None, max_length=MAX_QUERY_LENGTH,
        description="search: the live messages whose current text holds every word of `q`, "
                    "as a whole word or the start of one, case and accents ignored "
                    "(`cafe` finds `Café`, `caf` too); deleted messages are never found")

    @field_validator("chat_id", "parent_id", "q", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("q")
    @classmethod
    def _q_has_a_word(cls, value: str | None) -> str | None:
        if value is not None and not any(ch.isalnum() for ch in value):
            raise ValueError("q holds no word to search for")
        return value


async def get_message(request: web.Request) -> web.Response:
    store = request.app[READ_STORE]
    caller = caller_of(request)
    message_id = path_uuid(request, "message_id")
    row = await store.message(caller.customer_id, message_id)
    if row is None:
        raise Problem(404, "no such message", type_="message-not-found")
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
    caller = caller_of(request)
    chat_id = query.chat_id
    if chat_id is None and query.parent_id is not None:  # a thread: its parent's talk
        parent = await store.message(caller.customer_id, query.parent_id)
        if parent is None:
            raise Problem(404, "no such message", errors=[
                {"field": "parent_id", "message": "no such message"}])
        chat_id = parent["chat_id"]
    limit = query.page_size + 1
    if chat_id is not None and query.q is None:  # the access check and the page: one trip
        rows = await readable_messages(store, caller, chat_id, query.parent_id, query.cursor,
                                       limit)
        items = [message_resource(r) for r in rows]
        return json_ok(page_envelope(items, rows, query.page_size))
    if chat_id is not None:
        await readable_chat(store, caller, chat_id)
    if query.q is not None:
        rows = await MessageSearch(store.db).search(
            caller.customer_id, caller.agent_id, query.q, query.cursor, limit,
            chat_id=chat_id, parent_id=query.parent_id)
    else:
        rows = await MessageSearch(store.db).feed(caller.customer_id, caller.agent_id,
                                                  query.cursor, limit)
    items = [message_resource(r) for r in rows]
    return json_ok(page_envelope(items, rows, query.page_size))
