"""Who may read what: another customer's talk is 404 (existence does not leak), a
non-participant of the same customer gets 403."""

from __future__ import annotations

from uuid import UUID

from query_api.pagination import Cursor
from query_api.read_store import ReadStore, Row
from services.auth import Caller
from services.http.problems import Problem


def talk_not_found() -> Problem:
    return Problem(404, "no such talk", type_="talk-not-found")


async def readable_chat(store: ReadStore, caller: Caller, chat_id: UUID) -> Row:
    chat = await store.chat_with_membership(caller.customer_id, chat_id, caller.agent_id)
    if chat is None:
        raise talk_not_found()
    if not chat.pop("caller_is_participant"):
        raise not_a_participant()
    return chat


def not_a_participant() -> Problem:
    return Problem(403, "only participants of this talk may read it", type_="not-a-participant")


async def readable_messages(store: ReadStore, caller: Caller, chat_id: UUID,
                            parent_id: UUID | None, cursor: Cursor | None,
                            limit: int) -> list[Row]:
    """A page of the talk's (or thread's) messages, under the rules of :func:`readable_chat`,
    checked in the same statement as the page is read."""
    access, rows = await store.readable_messages(caller.customer_id, caller.agent_id, chat_id,
                                                 parent_id, cursor, limit)
    if access == "missing":
        raise talk_not_found()
    if access == "forbidden":
        raise not_a_participant()
    return rows
