"""A stream loaded for commands decodes once and folds once per fold function."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from command_api.domain.chat import fold_chat
from command_api.stream_cache import Loaded
from events.envelope import StoredEvent
from tests.factories import chat_created


def stored(event, position: int) -> StoredEvent:
    return StoredEvent(position=position, tx_id=1, event_id=uuid4(), stream_id="chat-x",
                       version=position, type=event.event_type,
                       schema_version=event.schema_version,
                       data=event.model_dump(mode="json"), metadata={},
                       recorded_at=datetime.now(UTC))


def test_each_fold_runs_once_and_the_events_decode_once():
    created = chat_created(name="once")
    loaded = Loaded([stored(created, 7)])
    calls = []

    def counting(events):
        calls.append(len(events))
        return fold_chat(events)

    first = loaded.folded(counting)
    assert loaded.folded(counting) is first and calls == [1]
    assert first.name == "once" and loaded.head == 7
    assert loaded.events is loaded.events  # decoded once
    assert Loaded([]).head == 0
