"""Dropping republished events: the stream is at-least-once, consumers dedupe by
``message_id``. A bounded memory of the ids seen most recently."""

from __future__ import annotations

from collections import deque


class RecentIds:
    def __init__(self, capacity: int) -> None:
        self._order: deque[str] = deque(maxlen=capacity)
        self._ids: set[str] = set()

    def seen(self, message_id: str) -> bool:
        """Whether ``message_id`` was seen already; remembers it if not."""
        if message_id in self._ids:
            return True
        if len(self._order) == self._order.maxlen:
            self._ids.discard(self._order[0])
        self._order.append(message_id)
        self._ids.add(message_id)
        return False
