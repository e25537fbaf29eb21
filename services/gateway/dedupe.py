"""Dropping republished events: the stream is at-least-once, consumers dedupe by
``message_id``. A bounded memory of the ids seen most recently.

It keeps the ``capacity`` most recent ids as 64-bit hashes (an int each, not the id's
string), so its memory is fixed once ``capacity`` ids have been seen, whatever the traffic:
about 100 bytes an id. A repeat comes within the publisher's unconfirmed window (a batch
or so after the original), far inside the capacity. Two different ids sharing a 64-bit
hash within the window (odds ~capacity²/2⁶⁴) would drop one event; the hash is Python's
randomised string hash, so nobody can aim for that.
"""

from __future__ import annotations

from collections import deque


class RecentIds:
    __slots__ = ("_order", "_ids")

    def __init__(self, capacity: int) -> None:
        self._order: deque[int] = deque(maxlen=capacity)
        self._ids: set[int] = set()

    def seen(self, message_id: str) -> bool:
        """Whether ``message_id`` was seen already; remembers it if not."""
        key = hash(message_id)
        if key in self._ids:
            return True
        order = self._order
        if len(order) == order.maxlen:
            self._ids.discard(order[0])
        order.append(key)
        self._ids.add(key)
        return False

    def __len__(self) -> int:
        return len(self._ids)
