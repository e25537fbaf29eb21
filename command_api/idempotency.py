"""Idempotent POST: a retry with the same ``Idempotency-Key`` (same caller, within 24 hours)
answers the first response without appending again; the same key with another body is 422.

The key is claimed in the same transaction as the append, so two concurrent requests with
one key cannot both append: the second waits on the first's claim and then replays it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
RETENTION = "24 hours"


@dataclass(frozen=True, slots=True)
class StoredResponse:
    request_hash: str
    status: int
    body: Any
    position: int


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), b"\0", path.encode(), b"\0", body):
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
    cur = await conn.execute(
        "SELECT request_hash, status, body, position FROM idempotency_keys"
        " WHERE customer_id = %s AND agent_id = %s AND key = %s",
        (customer_id, agent_id, key),
    )
    row = await cur.fetchone()
    return StoredResponse(row["request_hash"], row["status"], row["body"], row["position"])


async def record_response(conn: psycopg.AsyncConnection, customer_id: UUID, agent_id: UUID,
                          key: str, status: int, body: Any, position: int) -> None:
    await conn.execute(
        "UPDATE idempotency_keys SET status = %s, body = %s, position = %s"
        " WHERE customer_id = %s AND agent_id = %s AND key = %s",
        (status, Jsonb(body), position, customer_id, agent_id, key),
    )
