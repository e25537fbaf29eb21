"""The upcaster hook: an older stored payload is read as the current model."""

from __future__ import annotations

from typing import ClassVar
from uuid import uuid4

import pytest

from events.catalogue import Event
from events.upcasting import MissingUpcaster, UnknownEventType, Upcasters


class Renamed(Event):
    """Version 3 of an event whose field was renamed (v1→v2) and which gained one (v2→v3)."""

    event_type: ClassVar[str] = "Renamed"
    schema_version: ClassVar[int] = 3

    title: str
    language: str


def test_upcasters_chain_to_the_current_version():
    upcasters = Upcasters({"Renamed": Renamed})

    @upcasters.register("Renamed", 1)
    def v1_to_v2(data):
        data["title"] = data.pop("name")
        return data

    @upcasters.register("Renamed", 2)
    def v2_to_v3(data):
        data.setdefault("language", "en")
        return data

    assert upcasters.decode("Renamed", 1, {"name": "hello"}) == Renamed(title="hello", language="en")
    assert upcasters.decode("Renamed", 2, {"title": "t"}) == Renamed(title="t", language="en")
    assert upcasters.decode("Renamed", 3, {"title": "t", "language": "fr"}).language == "fr"


def test_a_missing_step_is_an_error_not_silent_data_loss():
    upcasters = Upcasters({"Renamed": Renamed})
    with pytest.raises(MissingUpcaster):
        upcasters.decode("Renamed", 1, {"name": "x"})


def test_unknown_types_are_reported():
    with pytest.raises(UnknownEventType):
        Upcasters({}).decode("Nope", 1, {})


def test_stored_events_decode_through_the_registry():
    from datetime import UTC, datetime

    from events.envelope import StoredEvent

    upcasters = Upcasters({"Renamed": Renamed})
    upcasters.register("Renamed", 1)(lambda d: {"title": d["name"]})
    upcasters.register("Renamed", 2)(lambda d: {**d, "language": "en"})
    stored = StoredEvent(position=1, tx_id=1, event_id=uuid4(), stream_id="s", version=1,
                         type="Renamed", schema_version=1, data={"name": "n"},
                         metadata={"customer_id": str(uuid4())}, recorded_at=datetime.now(UTC))
    assert stored.decode(upcasters) == Renamed(title="n", language="en")
