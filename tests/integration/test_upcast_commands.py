"""A command decides on an event stored in an older schema version: the command API reads
the talk's stream through the upcasters, so a talk created as version 1 stored it (``kind``,
``title``) is full, renamed and joined exactly as a current one is."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from aiohttp.test_utils import TestClient, TestServer

from events.postgres_store import PostgresEventStore
from services.db import Database, make_pool
from services.up import build_up_app
from tests.integration.old_versions import (
    assert_stored_as_v1,
    make_chat_created_v2,
    store_old_talk,
)
from tests.support import bearer

CHATS = "/v1.0/service_agents/talk_chats"


@pytest.fixture()
async def fresh(fresh_database_url, settings) -> AsyncIterator[tuple]:
    """The command API and a store on a database of the test's own (no other test's
    version-1 shaped events there)."""
    local = settings.model_copy(update={"database_url": fresh_database_url})
    pool = make_pool(local, min_size=1, max_size=4, name="talk-test-upcast")
    await pool.open()
    try:
        async with TestClient(TestServer(build_up_app(local))) as client:
            yield client, PostgresEventStore(Database(pool))
    finally:
        await pool.close()


async def test_commands_decide_on_a_talk_stored_as_version_1(fresh, fresh_database_url, monkeypatch):
    make_chat_created_v2(monkeypatch)
    client, store = fresh
    customer, a, b, c = uuid4(), uuid4(), uuid4(), uuid4()
    normal = await store_old_talk(store, customer, "normal", "old pair", [a, b])
    group = await store_old_talk(store, customer, "group", "old group", [a])
    await assert_stored_as_v1(fresh_database_url, normal)
    alice = bearer(customer, a)
    add_c = {"owner_type": "agent", "owner_id": str(c)}

    # "normal" comes only from the upcast ``kind``: a normal talk of two is full.
    resp = await client.post(f"{CHATS}/{normal}/participants", json=add_c, headers=alice)
    assert resp.status == 409, await resp.text()
    assert (await resp.json())["type"].endswith("talk-full")

    resp = await client.post(f"{CHATS}/{group}/participants", json=add_c, headers=alice)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["owner_id"] == str(c)

    # The answer is the talk folded from the upcast event and the new one.
    resp = await client.put(f"{CHATS}/{normal}", json={"detail": "new detail"}, headers=alice)
    assert resp.status == 200, await resp.text()
    talk = await resp.json()
    assert (talk["id"], talk["type"], talk["name"], talk["detail"], talk["member_count"],
            talk["tm_create"]) == (str(normal), "normal", "old pair", "new detail", 2,
                                   "2021-03-04 05:06:07.890123")

    # Only its participants may change it (the joins stored beside the old event count).
    resp = await client.put(f"{CHATS}/{normal}", json={"name": "x"}, headers=bearer(customer, c))
    assert resp.status in (403, 404), await resp.text()
