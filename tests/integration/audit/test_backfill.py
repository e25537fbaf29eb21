"""Migration 0004 on a store that already has events: it backfills every hash in stream and
version order and each stream's head, so the store verifies clean, and appends after it
continue the chains."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from events.catalogue import chat_stream
from events.postgres_store import ArrayFormEventStore
from services.migrate import apply_migrations, available_migrations
from tests.factories import metadata, rename
from tests.integration.audit.conftest import admin, seed_talks, store_on, talk_events_here

HASH_CHAIN = 4


def migrate_before_the_chain(url: str) -> None:
    """Apply the migrations before 0004 as ``talk migrate`` would have."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY,"
                     " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
        for mig in available_migrations():
            if mig.version < HASH_CHAIN:
                with conn.transaction():
                    conn.execute(mig.sql)
                    conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                                 (mig.version, mig.name))


def test_the_migration_backfills_an_existing_store(postgres_admin_url, capsys):
    from tests.conftest import new_database
    from tests.infra import drop_database

    name, url = new_database(postgres_admin_url, "talk_t")
    try:
        migrate_before_the_chain(url)

        async def seed() -> list:
            # the schema before 0004 has only the array form of the append
            async with store_on(url, ArrayFormEventStore) as store:
                chats = await seed_talks(store, 6, 5, per_append=4)
                await store.append([rename(chats[0], 5, "é \"quoted\"\n☃")], metadata())
                return chats

        chats = asyncio.run(seed())
        with admin(url) as conn:
            columns = {r[0] for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'events'")}
        assert "hash" not in columns

        assert HASH_CHAIN in asyncio.run(apply_migrations(url))

        with admin(url) as conn:
            assert conn.execute("SELECT count(*) FROM events WHERE hash IS NULL").fetchone()[0] == 0
            # the guard is back on
            with pytest.raises(psycopg.Error) as refused:
                conn.execute("UPDATE events SET type = type WHERE version = 1")
            assert refused.value.sqlstate == "TK002"
        ran = talk_events_here(url, capsys, "verify")
        assert ran.code == 0, ran.stdout
        assert "verified 31 events in 6 streams: clean" in ran.stderr

        async def more() -> None:
            async with store_on(url) as store:
                await store.append([rename(chats[0], 6, "after"), rename(chats[1], 5, "after")],
                                   metadata())

        asyncio.run(more())
        ran = talk_events_here(url, capsys, "verify")
        assert ran.code == 0, ran.stdout
        assert "verified 33 events in 6 streams: clean" in ran.stderr
        with admin(url) as conn:
            version, = conn.execute("SELECT version FROM streams WHERE stream_id = %s",
                                    (chat_stream(chats[0]),)).fetchone()
        assert version == 7
    finally:
        drop_database(postgres_admin_url, name)
