"""Event ids are RFC 9562 version 7 UUIDs, ordered by the millisecond they were made in."""

from __future__ import annotations

import time

from events.envelope import NewEvent
from events.ids import time_ordered_uuid


def test_version_variant_and_time():
    before = time.time_ns() // 1_000_000
    made = time_ordered_uuid()
    after = time.time_ns() // 1_000_000
    assert made.version == 7
    assert made.variant == "specified in RFC 4122"
    assert before <= made.int >> 80 <= after


def test_later_milliseconds_sort_later_and_ids_differ():
    ids = [time_ordered_uuid() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    by_time = sorted(ids, key=lambda u: u.int >> 80)
    assert [u.int >> 80 for u in sorted(ids)] == [u.int >> 80 for u in by_time]


def test_new_events_get_one():
    from tests.factories import chat_created

    assert NewEvent("chat-x", chat_created()).event_id.version == 7
