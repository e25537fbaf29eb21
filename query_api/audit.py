"""Audit reads over HTTP, for callers whose token has ``"roles": ["audit"]``:

- ``GET /v1.0/audit/talk_chats/{chat_id}?at=POSITION|TIMESTAMP``: the talk as it was then
  (the output of ``talk events state``; without ``at``: as it is now);
- ``GET /v1.0/audit/talk_messages/{message_id}/history``: every version of a message.

An auditor sees every talk of their own customer, participant or not; another customer's
talk or message is 404, as for everyone. Unlike the rest of the query API these handlers
read the event store, not the read tables: an audit answers from the source of truth and
at any moment of it, which the read tables cannot do. Their queries are index-backed (a
stream, or a talk's streams through ``events_messages_by_chat``).
"""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from events import catalogue as ev
from events.point_in_time import (
    AtTime,
    BadMoment,
    Moment,
    NoSuchPosition,
    NotFinalYet,
    message_events,
    message_history,
    parse_moment,
    talk_customer,
    talk_state,
)
from query_api.access import talk_not_found
from query_api.consistency import TIMEOUT
from services.auth import Caller
from services.http.context import DATABASE
from services.http.middlewares import caller_of
from services.http.paths import path_uuid
from services.http.problems import Problem
from services.http.responses import json_ok
from services.timefmt import utcnow


def require_auditor(request: web.Request) -> Caller:
    caller = caller_of(request)
    if not caller.is_auditor:
        raise Problem(403, "auditing needs the role 'audit' in the token", type_="not-an-auditor")
    return caller


def moment_of(request: web.Request) -> Moment:
    raw = request.query.get("at")
    if raw is None:
        return AtTime(utcnow())
    try:
        return parse_moment(raw)
    except BadMoment as exc:
        raise Problem(400, str(exc), errors=[{"field": "at", "message": str(exc)}]) from None


async def _require_customers_talk(request: web.Request, caller: Caller, chat_id: UUID) -> None:
    if await talk_customer(request.app[DATABASE], chat_id) != caller.customer_id:
        raise talk_not_found()


async def get_talk_at(request: web.Request) -> web.Response:
    caller = require_auditor(request)
    chat_id = path_uuid(request, "chat_id")
    moment = moment_of(request)
    await _require_customers_talk(request, caller, chat_id)
    try:
        state = await talk_state(request.app[DATABASE], chat_id, moment,
                                 wait=request.app[TIMEOUT])
    except NoSuchPosition as exc:
        raise Problem(400, str(exc), errors=[{"field": "at", "message": str(exc)}]) from None
    except NotFinalYet as exc:
        raise Problem(503, str(exc), headers={"Retry-After": "1"}) from None
    if state is None:
        raise Problem(404, "the talk did not exist yet at that moment", type_="talk-not-found")
    return json_ok(state)


async def get_message_history(request: web.Request) -> web.Response:
    caller = require_auditor(request)
    message_id = path_uuid(request, "message_id")
    events = await message_events(request.app[DATABASE], message_id)
    posted = events[0].decode() if events else None
    if not isinstance(posted, ev.MessagePosted):
        raise Problem(404, "no such message", type_="message-not-found")
    try:
        await _require_customers_talk(request, caller, posted.chat_id)
    except Problem:
        raise Problem(404, "no such message", type_="message-not-found") from None
    return json_ok({"message_id": str(message_id), "chat_id": str(posted.chat_id),
                    "result": message_history(events)})
