"""Which partition a talk belongs to: ``TALK_PROJECTOR_PARTITIONS`` splits projection and
publishing by a hash of the talk id, so all of one talk's events are projected and published
in order by one partition.

The hash is the first 28 bits of the md5 of the talk id's text; the SQL function
``talk_partition(chat_id text, partitions integer)`` (migration 0011) is the same, and keys
the expression index each partition's read of the store uses (:func:`partition_index_sql`).
"""

from __future__ import annotations

from hashlib import md5
from uuid import UUID

MAX_PARTITIONS = 1024


def talk_hash(chat_id: UUID | str) -> int:
    """The 28-bit hash of talk ``chat_id`` its partition is taken from."""
    return int(md5(str(chat_id).encode()).hexdigest()[:7], 16)


def partition_of(chat_id: UUID | str, partitions: int) -> int:
    """The partition of talk ``chat_id`` among ``partitions``."""
    if partitions == 1:
        return 0
    return talk_hash(chat_id) % partitions


def partition_expression(partitions: int, alias: str = "") -> str:
    """The SQL expression of an event's partition (``partitions`` inlined as a literal, so
    the planner matches it with the index)."""
    prefix = f"{alias}." if alias else ""
    return f"talk_partition({prefix}data->>'chat_id', {int(partitions)})"


def partition_index_name(partitions: int) -> str:
    return f"events_partition_order_{int(partitions)}"


def partition_index_sql(partitions: int) -> str:
    """The index that serves each partition's read in the global order (one per N)."""
    return (f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {partition_index_name(partitions)}"
            f" ON events ({partition_expression(partitions)}, tx_id, position)")
