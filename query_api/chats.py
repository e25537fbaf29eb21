"""GET handlers for talks and their participants."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import Field

from query_api.access import readable_chat
from query_api.context import READ_STORE
from query_api.pagination import PageQuery, page_envelope
from query_api.resources import chat_resource, participant_resource
from query_api.talk_list import seen_talks_of_agent
from query_api.viewer import with_viewer
from services.http.bodies import parse_query
from services.http.middlewares import caller_of
from services.http.paths import path_uuid
from services.http.responses import json_ok


async def get_chat(request: web.Request) -> web.Response:
    store = request.app[READ_STORE]
    chat_id = path_uuid(request, "chat_id")
    caller = caller_of(request)
    chat = await readable_chat(store, caller, chat_id)
    return json_ok((await with_viewer(store.db, caller.agent_id, [chat],
                                      [chat_resource(chat)]))[0])


class ChatListQuery(PageQuery):
    status: Literal["active", "closed"] | None = Field(
        default=None, description="only the `active` or the `closed` talks (default: both)")
    order: Literal["created", "activity"] = Field(
        default="created",
        description="`created`: newest `tm_create` first; `activity`: newest "
                    "`tm_last_message` first (a talk without messages by its `tm_create`). A "
                    "talk that moves while a client pages (a new message) is not repeated: "
                    "it moves ahead of the pages already read, where a fresh first page finds it")


async def list_chats(request: web.Request) -> web.Response:
    store = request.app[READ_STORE]
    caller = caller_of(request)
    page = parse_query(request, ChatListQuery)
    talks = await seen_talks_of_agent(store.db, caller.customer_id, caller.agent_id,
                                      page.cursor, page.page_size + 1, status=page.status,
                                      order=page.order)
    return json_ok(page_envelope(talks.resources(page.page_size), talks.keys(),
                                 page.page_size, key="page_key"))


async def list_participants(request: web.Request) -> web.Response:
    store = request.app[READ_STORE]
    chat_id = path_uuid(request, "chat_id")
    await readable_chat(store, caller_of(request), chat_id)
    rows = await store.participants(chat_id)
    return json_ok({"result": [participant_resource(r) for r in rows],
                              "next_page_token": ""})
