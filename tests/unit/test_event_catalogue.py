"""The event catalogue is the one list of events: everything derived from it agrees with it,
and what cannot be derived (the code saying what an event does) exists for every event.

Each assertion names what is missing, so adding an event to ``events/catalogue.py`` and
running this file is the checklist (README, "Adding an event")."""

from __future__ import annotations

import typing
from datetime import UTC, datetime
from uuid import UUID

from command_api.domain.chat import CHAT_EVENTS
from command_api.domain.message import MESSAGE_EVENTS
from events import catalogue as ev
from projector.asyncapi import BODY_MODELS
from projector.published import EVENT_NAMES, RESOURCE_OF
from projector.read_model import APPLIERS
from query_api.resources import evolve_chat_row, evolve_message_row
from services.gateway.feed import EVENT_TYPES

AGENT = UUID(int=1)
NOW = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)


def _all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_all_subclasses(sub)}
    return found


def _value(annotation: typing.Any) -> typing.Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return typing.get_args(annotation)[0]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return _value(next(a for a in typing.get_args(annotation) if a is not type(None)))
    if origin is tuple:
        return ()
    return {UUID: AGENT, datetime: NOW, str: "sample", int: 1}[annotation]


def sample(cls: type[ev.Event]) -> ev.Event:
    """An instance with fixed values: every id is AGENT, every string "sample"."""
    hints = typing.get_type_hints(cls)
    return cls(**{name: _value(hints[name]) for name in cls.model_fields})


def test_every_event_class_is_listed():
    defined = {c.__name__ for c in _all_subclasses(ev.Event) if c.__module__ == ev.__name__}
    missing = defined - {c.__name__ for c in ev.EVENT_CLASSES}
    assert not missing, f"add to events.catalogue.EVENT_CLASSES: {sorted(missing)}"


def test_every_event_says_where_it_goes():
    for cls in ev.EVENT_CLASSES:
        name = cls.__name__
        assert cls.event_type == name, f"{name}.event_type must be {name!r}"
        assert getattr(cls, "stream", None) in ev.STREAM_KINDS, f"{name}.stream: one of {ev.STREAM_KINDS}"
        assert set(getattr(cls, "rows", ())) <= set(ev.ROW_KINDS), f"{name}.rows: a subset of {ev.ROW_KINDS}"
        assert getattr(cls, "resource", None) in ev.RESOURCES, f"{name}.resource: one of {ev.RESOURCES}"
        assert getattr(cls, "published_as", ""), f"{name}.published_as is missing"
        assert getattr(cls, "description", ""), f"{name}.description is missing"
    names = [cls.published_as for cls in ev.EVENT_CLASSES]
    assert len(names) == len(set(names)), f"published names must be unique: {names}"


def test_every_event_has_a_stream_and_an_aggregate():
    domain = set(CHAT_EVENTS) | set(MESSAGE_EVENTS)
    for cls in ev.EVENT_CLASSES:
        event = sample(cls)
        assert ev.stream_of(event).startswith(f"{cls.stream}-"), f"stream_of({cls.__name__})"
        if cls.stream in ("chat", "message"):
            assert cls in domain, f"{cls.__name__}: not folded by the domain's evolve"


def test_every_event_has_a_read_model_applier():
    missing = sorted(set(ev.EVENT_TYPES) - set(APPLIERS))
    assert not missing, f"add to projector.read_model.APPLIERS: {missing}"
    unknown = sorted(set(APPLIERS) - set(ev.EVENT_TYPES))
    assert not unknown, f"appliers of events the catalogue does not list: {unknown}"


def test_every_row_changing_event_is_folded_by_the_row_folds():
    chat_row = {"id": AGENT, "customer_id": AGENT, "type": "group", "name": "base",
                "detail": "base", "member_count": 1, "tm_create": NOW, "tm_update": None,
                "tm_delete": None, "status": "active", "message_seq": 0, "normal_count": 0,
                "last_message_id": None, "tm_last_message": None}
    message_row = {"id": AGENT, "customer_id": AGENT, "chat_id": AGENT, "parent_id": None,
                   "owner_type": "agent", "owner_id": AGENT, "type": "normal", "text": "base",
                   "medias": [], "reactions": [{"emoji": "sample", "owner_type": "agent",
                                                "owner_id": str(AGENT), "tm_create": "x"}],
                   "tm_create": NOW, "tm_update": None, "tm_delete": None}
    for cls in ev.EVENT_CLASSES:
        event = sample(cls)
        if "talk" in cls.rows:
            before = {**chat_row, "id": event.chat_id}
            assert evolve_chat_row(dict(before), event, AGENT) != before, (
                f"query_api.resources.evolve_chat_row does not fold {cls.__name__}")
        if "message" in cls.rows:
            assert evolve_message_row(dict(message_row), event, AGENT) != message_row, (
                f"query_api.resources.evolve_message_row does not fold {cls.__name__}")


def test_published_names_feed_the_outbox_asyncapi_and_gateway():
    published = {cls.published_as for cls in ev.EVENT_CLASSES}
    assert EVENT_NAMES == ev.PUBLISHED_NAMES
    assert set(RESOURCE_OF) == published
    assert set(BODY_MODELS) == published, "regenerate: python -m projector.asyncapi"
    assert EVENT_TYPES == published, "services.gateway.feed.EVENT_TYPES"
