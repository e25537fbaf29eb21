"""Idempotent POST: a retry with the same ``Idempotency-Key`` (same caller, within 24 hours)
answers the first response without appending again; the same key with another body is 422.

The key is claimed in the same transaction as the append, so two concurrent requests with
one key cannot both append: the second waits on the first's claim and then replays it.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import orjson
import psycopg
import structlog
from psycopg.types.json import Jsonb

from events.envelope import Checkpoint
from services.db import Database

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
# Visible ASCII (as a structured-field string, less the space): a byte that is not UTF-8
# (handed over by aiohttp as a surrogate) or a control character is refused before the key
# reaches the database.
KEY_PATTERN = f"^[!-~]{{1,{MAX_KEY_LENGTH}}}$"
_KEY_FORM = re.compile(KEY_PATTERN)
log = structlog.get_logger("talk.idempotency")

RETENTION = "24 hours"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The first answer to a key: ``body`` is its exact bytes, so a replay is identical."""

    request_hash: str
    status: int
    body: bytes
    position: Checkpoint  # the first answer's X-Talk-Position


# The key keeps the answer's position; its place in the global order is the event's there.
_SELECT = (
    "SELECT k.request_hash, k.status, k.body, k.position, e.tx_id::text::bigint AS tx_id"
    " FROM idempotency_keys k LEFT JOIN events e ON e.position = k.position"
    " WHERE k.customer_id = %s AND k.agent_id = %s AND k.key = %s"
)


def _stored(row: dict[str, Any]) -> StoredResponse:
    body = row["body"]
    # The body is kept as a JSON string holding the answer's text: a jsonb object would
    # reorder its keys, and a replay must answer the very same bytes.
    raw = body.encode() if isinstance(body, str) else orjson.dumps(body)
    at = Checkpoint(row["tx_id"], row["position"]) if row["tx_id"] is not None else Checkpoint()
    return StoredResponse(row["request_hash"], row["status"], raw, at)


def well_formed_key(key: str) -> bool:
    return _KEY_FORM.fullmatch(key) is not None


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests "the same" for a key: method, path and the body's JSON
    (key order and whitespace do not matter; a body that is not JSON counts as its bytes)."""
    try:
        canonical = orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS) if body.strip() else b""
    except orjson.JSONDecodeError:
        canonical = body
    digest = hashlib.sha256()
    for part in (method.encode(), b"\0", path.encode(), b"\0", canonical):
        digest.update(part)
    return digest.hexdigest()


async def claim_key(conn: psycopg.AsyncConnection, customer_id: UUID, agent_id: UUID, key: str,
                    request_hash: str) -> StoredResponse | None:
    """Claim ``key`` inside the caller's transaction. ``None``: claimed, go ahead; otherwise
    the response recorded by an earlier request with this key."""
    await conn.execute(
        "DELETE FROM idempotency_keys WHERE customer_id = %s AND agent_id = %s AND key = %s"
        f" AND created_at < now() - interval '{RETENTION}'",
        (customer_id, agent_id, key),
    )
    cur = await conn.execute(
        "INSERT INTO idempotency_keys (customer_id, agent_id, key, request_hash)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING key",
        (customer_id, agent_id, key, request_hash),
    )
    if await cur.fetchone() is not None:
        return None
    cur = await conn.execute(_SELECT, (customer_id, agent_id, key))
    return _stored(await cur.fetchone())


async def recorded_response(conn: psycopg.AsyncConnection, customer_id: UUID, agent_id: UUID,
                            key: str) -> StoredResponse | None:
    """The answer recorded for ``key`` within the retention, if a request committed one."""
    cur = await conn.execute(
        f"{_SELECT} AND k.status <> 0 AND k.created_at >= now() - interval '{RETENTION}'",
        (customer_id, agent_id, key),
    )
    row = await cur.fetchone()
    return _stored(row) if row is not None else None


async def record_response(conn: psycopg.AsyncConnection, customer_id: UUID, agent_id: UUID,
                          key: str, status: int, body: bytes, position: Checkpoint) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET status = %s, body = %s, position = %s"
        " WHERE customer_id = %s AND agent_id = %s AND key = %s",
        (status, Jsonb(body.decode()), position.position, customer_id, agent_id, key),
    )


PURGE_INTERVAL = 3600.0  # seconds
PURGE_BATCH = 10_000


async def purge_expired_keys(db: Database) -> int:
    """Delete keys older than the retention, a batch at a time; returns how many went."""
    total = 0
    while True:
        async with db.statement("purge_idempotency_keys") as conn:
            cur = await conn.execute(
                "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys"
                f" WHERE created_at < now() - interval '{RETENTION}' LIMIT {PURGE_BATCH})"
            )
            total += cur.rowcount
            if cur.rowcount < PURGE_BATCH:
                return total


async def purge_periodically(db: Database, interval: float = PURGE_INTERVAL) -> None:
    """Runs for the life of the command API; several replicas purging at once is harmless."""
    while True:
        try:
            await purge_expired_keys(db)
        except Exception as exc:  # the next round tries again; retries are answered anyway
            log.warning("idempotency.purge_failed", error=str(exc))
        await asyncio.sleep(interval)
