"""Upcasters: turn a stored payload of an older schema version into the current shape.

An upcaster is registered for ``(event_type, from_version)`` and returns the payload at
``from_version + 1``; :meth:`Upcasters.upcast` chains them up to the catalogue's version.
Stored events are never rewritten: upcasting happens on every read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from events.catalogue import EVENT_TYPES, Event

Payload = dict[str, Any]
Upcaster = Callable[[Payload], Payload]


class UnknownEventType(LookupError):
    def __init__(self, event_type: str) -> None:
        super().__init__(f"unknown event type {event_type!r}")
        self.event_type = event_type


class MissingUpcaster(LookupError):
    def __init__(self, event_type: str, version: int) -> None:
        super().__init__(f"no upcaster for {event_type} v{version}")


class Upcasters:
    """A registry of upcasters over an event catalogue."""

    def __init__(self, catalogue: dict[str, type[Event]] | None = None) -> None:
        self._catalogue = dict(EVENT_TYPES if catalogue is None else catalogue)
        self._steps: dict[tuple[str, int], Upcaster] = {}

    def register(self, event_type: str, from_version: int) -> Callable[[Upcaster], Upcaster]:
        def decorator(fn: Upcaster) -> Upcaster:
            self._steps[(event_type, from_version)] = fn
            return fn

        return decorator

    def event_class(self, event_type: str) -> type[Event]:
        try:
            return self._catalogue[event_type]
        except KeyError:
            raise UnknownEventType(event_type) from None

    def upcast(self, event_type: str, schema_version: int, data: Payload) -> Payload:
        target = self.event_class(event_type).schema_version
        version = schema_version
        while version < target:
            step = self._steps.get((event_type, version))
            if step is None:
                raise MissingUpcaster(event_type, version)
            data = step(dict(data))
            version += 1
        return data

    def decode(self, event_type: str, schema_version: int, data: Payload) -> Event:
        """The stored payload as the current catalogue model."""
        cls = self.event_class(event_type)
        return cls.model_validate(self.upcast(event_type, schema_version, data))


# The registry the system uses. Register upcasters here when a schema version is bumped.
UPCASTERS = Upcasters()
