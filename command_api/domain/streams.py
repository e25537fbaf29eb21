"""Which stream each domain event is appended to (each event's ``stream`` in the catalogue)."""

from __future__ import annotations

from events.catalogue import stream_of

__all__ = ["stream_of"]
