"""Typed errors of the event store."""

from __future__ import annotations


class EventStoreError(Exception):
    """Base of the store's own errors."""


class ConcurrencyConflict(EventStoreError):
    """A stream was not at the expected version: another writer got there first."""

    def __init__(self, stream_id: str, expected_version: int) -> None:
        super().__init__(f"stream {stream_id!r} is not at version {expected_version}")
        self.stream_id = stream_id
        self.expected_version = expected_version
