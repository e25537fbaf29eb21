"""``GET /v1.0/service_agents/talk_messages/{message_id}/history``: every version a message's
text has had, oldest first, for the participants of its talk (auditors have the full
history of every change at ``/v1.0/audit/...``).

The versions come from the message's own stream in the event store (``message-<id>``, read
by its index, as the audit does): the posted text with its ``tm_create``, then each edit's
text with its ``tm_update``. The event store is the one place that holds them all; a read
table of versions would copy it and need its own rebuild and verify. Who may ask is decided
on the read tables like every other read (404 for another customer's message, 403 for a
non-participant), so ``X-Talk-Min-Position`` applies. A deleted message has no versions
left to show: its author withdrew them (``result`` is empty; auditors still see them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from aiohttp import web

from events import catalogue as ev
from events.envelope import StoredEvent
from events.point_in_time import message_events
from query_api.access import readable_chat
from query_api.context import READ_STORE
from services.http.context import DATABASE
from services.http.middlewares import caller_of
from services.http.paths import path_uuid
from services.http.problems import Problem
from services.http.responses import json_ok
from services.timefmt import format_ts


def text_versions(events: Iterable[StoredEvent]) -> list[dict[str, Any]]:
    """The texts of a message's stream, oldest first; none once it is deleted."""
    versions: list[dict[str, Any]] = []
    for stored in events:
        event = stored.decode()
        if isinstance(event, ev.MessagePosted):
            versions.append({"text": event.text, "tm_update": format_ts(event.tm_create)})
        elif isinstance(event, ev.MessageEdited):
            versions.append({"text": event.text, "tm_update": format_ts(event.tm_update)})
        elif isinstance(event, ev.MessageDeleted):
            return []
    return versions


async def get_message_history(request: web.Request) -> web.Response:
    store = request.app[READ_STORE]
    caller = caller_of(request)
    message_id = path_uuid(request, "message_id")
    row = await store.message(caller.customer_id, message_id)
    if row is None:
        raise Problem(404, "no such message")
    await readable_chat(store, caller, row["chat_id"])
    if row["tm_delete"] is not None:
        return json_ok({"result": []})
    events = await message_events(request.app[DATABASE], message_id)
    return json_ok({"result": text_versions(events)})
