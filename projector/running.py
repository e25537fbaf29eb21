"""Whether a ``talk projector`` is running against this database: each one holds (or waits
for) a session-level advisory lock while it projects, the single projector's
``PROJECTOR_LOCK`` or one per partition it takes, keys in ``PARTITION_LOCKS``. A rebuild
that lays the live checkpoints out in another number of partitions asks this first, and
refuses while one runs (it would go on with the old layout).

``pg_advisory_lock(bigint)`` shows in ``pg_locks`` as ``classid`` (the key's high 32 bits),
``objid`` (the low 32 bits) and ``objsubid = 1``.
"""

from __future__ import annotations

import psycopg

from projector.partition_share import PARTITION_LOCKS, TALK_CLASS
from projector.runner import PROJECTOR_LOCK

# Every partition's projector lock, whatever the number of partitions: first and last key.
PARTITION_KEYS = ((TALK_CLASS << 32) | PARTITION_LOCKS, (TALK_CLASS << 32) | PARTITION_LOCKS | 0xFFFFFF)

_RUNNING = (
    "SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
    " WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND d.datname = current_database()"
    "   AND (((l.classid::bigint << 32) | l.objid::bigint) = %s"
    "        OR ((l.classid::bigint << 32) | l.objid::bigint) BETWEEN %s AND %s)) AS running"
)


async def projector_running(conn: psycopg.AsyncConnection) -> bool:
    """True while any session of this database holds, or waits for, a projector's lock (a
    waiting one is a projector running too: it takes over when the holder goes)."""
    cur = await conn.execute(_RUNNING, (PROJECTOR_LOCK, *PARTITION_KEYS))
    row = await cur.fetchone()
    return bool(row["running"] if isinstance(row, dict) else row[0])
