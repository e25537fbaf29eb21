"""The pure folds of thread summaries and ``tm_update`` (the rows the projector, a replay and
the command answers agree on)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

from events import catalogue as ev
from projector.replay_fold import fold, touched
from query_api.resources import evolve_message_row, evolve_parent_row, message_resource

T0 = datetime(2026, 1, 1, tzinfo=UTC)
CUSTOMER = uuid4()


def posted(chat_id, parent_id=None, at=T0, text="hi") -> ev.MessagePosted:
    return ev.MessagePosted(message_id=uuid4(), chat_id=chat_id, parent_id=parent_id,
                            owner_type="agent", owner_id=uuid4(), type="normal", text=text,
                            tm_create=at)


def test_a_posted_message_has_no_replies_and_tm_update_is_tm_create():
    row = evolve_message_row(None, posted(uuid4()), CUSTOMER)
    resource = message_resource(row)
    assert (resource["reply_count"], resource["tm_last_reply"]) == (0, "")
    assert resource["tm_update"] == resource["tm_create"]


def test_the_parent_counts_direct_replies_and_keeps_the_newest_time():
    chat = uuid4()
    parent = evolve_message_row(None, posted(chat), CUSTOMER)
    late = posted(chat, parent["id"], T0 + timedelta(seconds=5))
    early = posted(chat, parent["id"], T0 + timedelta(seconds=2))  # committed after, older clock
    row = evolve_parent_row(evolve_parent_row(parent, late), early)
    assert (row["reply_count"], row["tm_last_reply"]) == (2, late.tm_create)
    assert row["tm_update"] == parent["tm_update"]
    assert evolve_parent_row(None, late) is None


def test_reactions_move_tm_update():
    chat = uuid4()
    message = posted(chat)
    row = evolve_message_row(None, message, CUSTOMER)
    added = ev.ReactionAdded(message_id=message.message_id, chat_id=chat, emoji="eyes",
                             owner_type="agent", owner_id=uuid4(), tm_create=T0 + timedelta(1))
    row = evolve_message_row(row, added, CUSTOMER)
    assert row["tm_update"] == added.tm_create
    removed = ev.ReactionRemoved(message_id=message.message_id, chat_id=chat, emoji="eyes",
                                 owner_type="agent", owner_id=added.owner_id,
                                 tm_remove=T0 + timedelta(2))
    assert evolve_message_row(row, removed, CUSTOMER)["tm_update"] == removed.tm_remove


def test_a_replay_chunk_loads_a_parent_it_did_not_create_and_counts_its_replies():
    chat = uuid4()
    earlier = posted(chat)  # posted in an earlier chunk
    in_chunk = posted(chat, at=T0 + timedelta(seconds=1))
    replies = [posted(chat, earlier.message_id, T0 + timedelta(seconds=2)),
               posted(chat, in_chunk.message_id, T0 + timedelta(seconds=3)),
               posted(chat, earlier.message_id, T0 + timedelta(seconds=4))]
    chunk = [in_chunk, *replies]
    need = touched(chunk)
    assert need.messages_to_load == [earlier.message_id]
    loaded = {earlier.message_id.int: evolve_message_row(None, earlier, CUSTOMER)}
    rows = fold([(e, CUSTOMER) for e in chunk], {}, loaded).messages
    parent = rows[earlier.message_id.int]
    assert (parent["reply_count"], parent["tm_last_reply"]) == (2, replies[2].tm_create)
    assert rows[in_chunk.message_id.int]["reply_count"] == 1
    assert rows[replies[0].message_id.int]["reply_count"] == 0
