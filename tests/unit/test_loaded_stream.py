"""A stream loaded for commands decodes once and folds once per fold function."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

from command_api.domain.chat import fold_chat
from command_api.stream_cache import Loaded
from events.catalogue import ChatUpdated
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


def _renamed(chat_id, name: str) -> ChatUpdated:
    return ChatUpdated(chat_id=chat_id, name=name, tm_update=datetime.now(UTC))


def test_an_extended_stream_folds_only_the_events_added_and_equals_a_full_fold():
    created = chat_created(name="v1")
    loaded = Loaded([stored(created, 1)])
    folded_events: list[int] = []

    def counting(events, state=None):
        folded_events.append(len(events))
        return fold_chat(events, state)

    loaded.folded(fold_chat)
    grown = loaded.extended([stored(_renamed(created.chat_id, "v2"), 2)])
    assert grown.folded(fold_chat).name == "v2" and grown.folded(fold_chat).version == 2
    # A fold first computed on the older entry after the extension (as a command's answer
    # is) still goes on over the added event alone on the newer one.
    loaded.folded(counting)
    assert grown.folded(counting) == fold_chat(grown.events) and folded_events == [1, 1]
    # Extended again: the link back is cut (one step at most), the folds are carried over.
    newest = grown.extended([stored(_renamed(created.chat_id, "v3"), 3)])
    assert grown._base is None and newest._base is grown
    assert newest.folded(counting).name == "v3" and folded_events == [1, 1, 1]
    assert newest.events == [created, _decoded(grown, 1), _decoded(newest, 2)]
    assert loaded.folded(fold_chat).name == "v1"  # the older entries are left as they were


def _decoded(loaded: Loaded, i: int):
    return loaded.stored[i].decode()
