"""Which partition an advisory lock in ``pg_locks`` stands for: the keys the partitioned
projector takes for each partition's projector and its publisher
(projector/partition_share.py), as ``pg_locks`` shows a bigint key (``classid`` the high 32
bits, ``objid`` the low ones, ``objsubid`` 1)."""

from __future__ import annotations

from projector.partition_share import partition_lock_key, publisher_lock_key


def lock_keys(partitions: int) -> dict[int, tuple[str, int]]:
    """Every partition's lock keys: key -> ("projector" or "publisher", partition)."""
    keys = {partition_lock_key(partitions, p): ("projector", p) for p in range(partitions)}
    keys.update({publisher_lock_key(partitions, p): ("publisher", p) for p in range(partitions)})
    return keys


def key_of(classid: int, objid: int, objsubid: int) -> int | None:
    """The bigint key of an advisory lock row of ``pg_locks`` (None for a two-int key)."""
    return (classid << 32) | objid if objsubid == 1 else None
