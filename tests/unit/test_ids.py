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


def _ids_over_milliseconds(spans: int) -> list[list]:
    """Ids made in ``spans`` successive milliseconds (several per millisecond), grouped by the
    millisecond of the clock they were made in, in the order they were made."""
    groups = []
    for _ in range(spans):
        now = time.time_ns() // 1_000_000
        while time.time_ns() // 1_000_000 == now:  # the next millisecond starts
            pass
        now = time.time_ns() // 1_000_000
        group = []
        while len(group) < 3 or time.time_ns() // 1_000_000 == now:
            group.append(time_ordered_uuid())
            if len(group) >= 50:
                break
        groups.append(group)
    return groups


def test_ids_made_later_sort_later_and_ids_differ():
    """In the order they are made, ids never go back in time, and an id made in a later
    millisecond sorts after every id of an earlier one (as uuids and as database keys:
    both compare the bytes from the first). Random (v4) ids fail this at once."""
    groups = _ids_over_milliseconds(40)
    made = [u for group in groups for u in group]
    assert len(set(made)) == len(made)
    times = [u.int >> 80 for u in made]
    assert times == sorted(times), "ids go back in time in the order they were made"
    for earlier, later in zip(groups, groups[1:], strict=False):
        if max(u.int >> 80 for u in earlier) < min(u.int >> 80 for u in later):
            assert max(earlier) < min(later)
            assert max(u.bytes for u in earlier) < min(u.bytes for u in later)
    assert len(set(times)) >= 20, "the ids span many milliseconds"


def test_new_events_get_one():
    from tests.factories import chat_created

    assert NewEvent("chat-x", chat_created()).event_id.version == 7
