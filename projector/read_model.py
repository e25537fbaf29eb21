"""Read-model writes: how each event changes the read tables (``rm_*``).

:func:`apply_events` is the live projector's batch: a batch of more than
``PER_EVENT_UP_TO`` events is applied set-based (:mod:`projector.live_batch`: the rows it
touches loaded, folded in memory, each table written once); a smaller one event by event
with the appliers below, which read nothing back: a batch of a few events, as when the
projector keeps up with live traffic, is quicker that way (no round trip for the load, no
statement planned for sets; measured side by side, the set-based batch wins from about
seven events on).

Each applier takes the connection of the projector's batch transaction; the projector
runs them in pipeline mode, so none of them may read a result back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import psycopg
from psycopg.types.json import Jsonb

from events import catalogue as ev
from events.envelope import StoredEvent
from projector.live_batch import apply_batch
from projector.read_markers import move_markers
from services.timefmt import format_ts

Apply = Callable[[psycopg.AsyncConnection, StoredEvent, ev.Event], Awaitable[None]]


async def chat_created(conn, stored: StoredEvent, e: ev.ChatCreated) -> None:
    await conn.execute(
        "INSERT INTO rm_chats (id, customer_id, type, name, detail, member_count, tm_create,"
        " tm_update) VALUES (%s, %s, %s, %s, %s, 0, %s, %s)",
        (e.chat_id, e.customer_id, e.type, e.name, e.detail, e.tm_create, e.tm_create),
    )


async def chat_updated(conn, stored: StoredEvent, e: ev.ChatUpdated) -> None:
    await conn.execute(
        "UPDATE rm_chats SET name = coalesce(%s, name), detail = coalesce(%s, detail),"
        " tm_update = %s WHERE id = %s",
        (e.name, e.detail, e.tm_update, e.chat_id),
    )


async def chat_deleted(conn, stored: StoredEvent, e: ev.ChatDeleted) -> None:
    await conn.execute(
        "UPDATE rm_chats SET tm_delete = %s, tm_update = %s WHERE id = %s",
        (e.tm_delete, e.tm_delete, e.chat_id),
    )


async def chat_closed(conn, stored: StoredEvent, e: ev.ChatClosed) -> None:
    await conn.execute("UPDATE rm_chats SET status = 'closed', tm_update = %s WHERE id = %s",
                       (e.tm_close, e.chat_id))


async def chat_reopened(conn, stored: StoredEvent, e: ev.ChatReopened) -> None:
    await conn.execute("UPDATE rm_chats SET status = 'active', tm_update = %s WHERE id = %s",
                       (e.tm_reopen, e.chat_id))


async def participant_joined(conn, stored: StoredEvent, e: ev.ParticipantJoined) -> None:
    # The marker starts at the talk's newest message: what came before joining is not unread.
    await conn.execute(
        "INSERT INTO rm_participants (id, customer_id, chat_id, owner_type, owner_id, tm_joined,"
        " read_seq, read_n)"
        " SELECT %s, %s, %s, %s, %s, %s, coalesce(c.message_seq, 0), coalesce(c.normal_count, 0)"
        " FROM (SELECT) AS one LEFT JOIN rm_chats c ON c.id = %s",
        (e.participant_id, stored.customer_id, e.chat_id, e.owner_type, e.owner_id, e.tm_joined,
         e.chat_id),
    )
    await conn.execute(
        "UPDATE rm_chats SET member_count = member_count + 1, tm_update = %s WHERE id = %s",
        (e.tm_joined, e.chat_id),
    )


async def participant_left(conn, stored: StoredEvent, e: ev.ParticipantLeft) -> None:
    await conn.execute("DELETE FROM rm_participants WHERE id = %s", (e.participant_id,))
    await conn.execute(
        "UPDATE rm_chats SET member_count = member_count - 1, tm_update = %s WHERE id = %s",
        (e.tm_left, e.chat_id),
    )


async def message_posted(conn, stored: StoredEvent, e: ev.MessagePosted) -> None:
    # The talk's counters first; the message takes its place (seq, n) from them. One row of
    # the talk and one of the author change, whatever the talk's size.
    await conn.execute(
        "UPDATE rm_chats SET message_seq = message_seq + 1,"
        " normal_count = normal_count + %s, last_message_id = %s, tm_last_message = %s"
        " WHERE id = %s",
        (int(e.type == "normal"), e.message_id, e.tm_create, e.chat_id),
    )
    await conn.execute(
        "INSERT INTO rm_messages (id, customer_id, chat_id, parent_id, owner_type, owner_id,"
        " type, text, medias, tm_create, tm_update, seq, n, mentions)"
        " SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
        " coalesce(c.message_seq, 0), coalesce(c.normal_count, 0), %s"
        " FROM (SELECT) AS one LEFT JOIN rm_chats c ON c.id = %s",
        (e.message_id, stored.customer_id, e.chat_id, e.parent_id, e.owner_type, e.owner_id,
         e.type, e.text, Jsonb([m.model_dump(mode="json") for m in e.medias]), e.tm_create,
         e.tm_create, Jsonb([str(a) for a in e.mentions]), e.chat_id),
    )
    if e.parent_id is not None:  # the thread's summary on its parent
        await conn.execute(
            "UPDATE rm_messages SET reply_count = reply_count + 1,"
            " tm_last_reply = greatest(tm_last_reply, %s) WHERE id = %s",
            (e.tm_create, e.parent_id),
        )
    if e.owner_type == "agent":
        await move_markers(conn, [(e.chat_id, e.owner_id, e.message_id, e.tm_create)])


async def message_edited(conn, stored: StoredEvent, e: ev.MessageEdited) -> None:
    await conn.execute(
        "UPDATE rm_messages SET text = %s, tm_update = %s, mentions = %s WHERE id = %s",
        (e.text, e.tm_update, Jsonb([str(a) for a in e.mentions]), e.message_id),
    )


async def message_deleted(conn, stored: StoredEvent, e: ev.MessageDeleted) -> None:
    await conn.execute(
        "UPDATE rm_messages SET text = '', medias = '[]', mentions = '[]', tm_delete = %s,"
        " tm_update = %s"
        " WHERE id = %s",
        (e.tm_delete, e.tm_delete, e.message_id),
    )


def reaction_json(e: ev.ReactionAdded) -> dict:
    return {"emoji": e.emoji, "owner_type": e.owner_type, "owner_id": str(e.owner_id),
            "tm_create": format_ts(e.tm_create)}


async def reaction_added(conn, stored: StoredEvent, e: ev.ReactionAdded) -> None:
    await conn.execute(
        "UPDATE rm_messages SET reactions = reactions || jsonb_build_array(%s::jsonb),"
        " tm_update = %s WHERE id = %s",
        (Jsonb(reaction_json(e)), e.tm_create, e.message_id),
    )


async def reaction_removed(conn, stored: StoredEvent, e: ev.ReactionRemoved) -> None:
    await conn.execute(
        "UPDATE rm_messages SET reactions = coalesce((SELECT jsonb_agg(r ORDER BY n)"
        "   FROM jsonb_array_elements(reactions) WITH ORDINALITY AS x(r, n)"
        "  WHERE NOT (r->>'emoji' = %s AND r->>'owner_id' = %s)), '[]'::jsonb),"
        " tm_update = %s WHERE id = %s",
        (e.emoji, str(e.owner_id), e.tm_remove, e.message_id),
    )


async def chat_read(conn, stored: StoredEvent, e: ev.ChatRead) -> None:
    await move_markers(conn, [(e.chat_id, e.owner_id, e.message_id, e.tm_read)])


APPLIERS: dict[str, Apply] = {
    "ChatCreated": chat_created,
    "ChatUpdated": chat_updated,
    "ChatDeleted": chat_deleted,
    "ChatClosed": chat_closed,
    "ChatReopened": chat_reopened,
    "ChatRead": chat_read,
    "ParticipantJoined": participant_joined,
    "ParticipantLeft": participant_left,
    "MessagePosted": message_posted,
    "MessageEdited": message_edited,
    "MessageDeleted": message_deleted,
    "ReactionAdded": reaction_added,
    "ReactionRemoved": reaction_removed,
}


async def apply_event(conn: psycopg.AsyncConnection, stored: StoredEvent) -> ev.Event:
    """Apply one stored event to the read tables; returns the decoded event."""
    event = stored.decode()
    await APPLIERS[stored.type](conn, stored, event)
    return event


PER_EVENT_UP_TO = 6
"""Batches up to this size are applied event by event (measured: bench/RESULTS.md, issue 13)."""


async def apply_events(conn: psycopg.AsyncConnection, events: Sequence[StoredEvent]) -> None:
    """Apply a batch of stored events, in order, to the read tables (the live projector's
    batch, in its transaction, in pipeline mode)."""
    if len(events) > PER_EVENT_UP_TO:
        await apply_batch(conn, events)
        return
    for stored in events:
        await apply_event(conn, stored)
