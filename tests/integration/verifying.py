"""``talk projections verify`` run in process by the tests: the live read tables compared
with a rebuild of the history."""

from __future__ import annotations

from projector.verify import verify_read_model
from services.db import Database, make_pool
from tests.integration.rebuild.conftest import Quiet


async def verify_live_tables(settings):
    """The verify report for the database of ``settings`` (its ``identical`` says it all)."""
    pool = make_pool(settings, min_size=1, max_size=4, name="talk-test-verify")
    await pool.open()
    try:
        return await verify_read_model(Database(pool), progress=Quiet)
    finally:
        await pool.close()
