"""The outbox publishes an event stored in an older schema version upcast: a talk created
as version 1 stored it (``kind``, ``title``) is published as the current ``chat_created``
body, and what follows it as the query API shows it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import pytest
from aiohttp.test_utils import TestClient, TestServer

from events.postgres_store import PostgresEventStore
from projector.outbox import Outbox
from projector.publisher import Publisher
from projector.runner import Projector
from services.db import Database, make_pool
from services.up import build_up_app
from tests.integration.old_versions import (
    CREATED_AT_TEXT,
    assert_stored_as_v1,
    make_chat_created_v2,
    store_old_talk,
)
from tests.integration.publishing.caller import CHATS, Caller
from tests.support import Running


@pytest.fixture()
async def fresh(fresh_database_url, amqp_settings) -> AsyncIterator[tuple]:
    """A database of the test's own (no other test's events shaped as version 1 there),
    with the API, a projector writing the outbox and a publisher to the session's exchange."""
    local = amqp_settings.model_copy(update={"database_url": fresh_database_url})
    pool = make_pool(local, min_size=1, max_size=4, name="talk-test-upcast")
    await pool.open()
    outbox = Outbox()
    running = [Running(Projector(local, before_batch=outbox.before_batch,
                                 after_batch=outbox.after_batch), "test-projector"),
               Running(Publisher(local), "test-publisher")]
    try:
        async with TestClient(TestServer(build_up_app(local.model_copy(update={"amqp_url": None})))) as client:
            yield client, PostgresEventStore(Database(pool))
    finally:
        for r in running:
            await r.close()
        await pool.close()


async def test_a_version_1_event_is_published_upcast(
        fresh, fresh_database_url, monkeypatch, open_tap):
    make_chat_created_v2(monkeypatch)
    client, store = fresh
    customer, a, b = uuid4(), uuid4(), uuid4()
    tap = await open_tap(f"{customer}.#")
    chat_id = await store_old_talk(store, customer, "group", "stored as v1", [a, b])
    await assert_stored_as_v1(fresh_database_url, chat_id)

    created = (await tap.wait_for(1, "chat_created", event="chat_created"))[0]
    data = created.body["data"]
    assert (data["id"], data["customer_id"], data["type"], data["name"], data["detail"],
            data["tm_create"], data["tm_delete"]) == (
        str(chat_id), str(customer), "group", "stored as v1", "old shape", CREATED_AT_TEXT, "")
    assert "kind" not in data and "title" not in data
    assert sorted(created.body["audience"]) == sorted([str(a), str(b)])
    assert created.routing_key == f"{customer}.{chat_id}.chat_created"

    # What follows the old event: published as the query API answers for the same talk.
    alice = Caller(client, customer, a)
    _, position = await alice.command("PUT", f"{CHATS}/{chat_id}", {"detail": "new detail"})
    updated = (await tap.wait_for(1, "chat_updated", event="chat_updated"))[0]
    answer = await alice.read(f"{CHATS}/{chat_id}", position)
    published = updated.body["data"]
    # Every published field as the API answers it (the answer adds the caller's own view:
    # unread and mention counts, the last message).
    assert published == {k: answer[k] for k in published}
    assert {"id", "type", "name", "detail", "member_count", "tm_create", "tm_update"} <= set(published)
    assert (answer["type"], answer["name"], answer["member_count"]) == ("group", "stored as v1", 2)
