"""A transaction ended on purpose (``services.db.Rollback``, e.g. an idempotent replay found
by the key's claim) is rolled back like any failure but not counted in
``talk_db_transaction_errors_total``; any other exception is counted."""

from __future__ import annotations

from uuid import uuid4

import pytest
from prometheus_client import REGISTRY

from services.db import Rollback


class _Found(Rollback):
    pass


def _errors(name: str) -> float:
    return REGISTRY.get_sample_value("talk_db_transaction_errors_total", {"name": name}) or 0.0


async def _marks(db, mark: str) -> int:
    async with db.statement("test_count_marks") as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM test_rollback_marks WHERE id = %s",
                                 (mark,))
        return (await cur.fetchone())["n"]


@pytest.mark.parametrize(("raised", "counted"), [(_Found, 0), (ValueError, 1)])
async def test_a_rollback_on_purpose_is_rolled_back_and_not_counted(db, raised, counted):
    async with db.statement("test_marks_table") as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS test_rollback_marks (id text)")
    name, mark = f"test_{uuid4().hex[:8]}", uuid4().hex
    with pytest.raises(raised):
        async with db.transaction(name) as conn:
            await conn.execute("INSERT INTO test_rollback_marks VALUES (%s)", (mark,))
            raise raised()
    assert await _marks(db, mark) == 0  # rolled back either way
    assert _errors(name) == counted
