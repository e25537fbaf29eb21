"""``X-Talk-Position`` compares in the projection's own order, ``(tx_id, position)``.

Two concurrent commands whose positions and commit order disagree: A's transaction begins
first (its Idempotency-Key is claimed) but draws its position after B's, because A waits
on a row lock the test holds while B commits. The projection applies A before B (A's
transaction id is lower), so of the two positions the greater one, A's, is not the last
write the projection reaches; of the two tokens, the greater one is B's. The projector is
then held between A and B (one event per batch): a read waiting for the greatest token
waits for B, and a read with the old bare position answers at once, without B.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from uuid import uuid4

import psycopg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from events.envelope import Checkpoint, StoredEvent
from events.position_token import format_position, parse_position
from projector.runner import Projector
from query_api.context import READ_STORE
from services.up import build_up_app
from tests.integration.api.conftest import CHATS, MESSAGES, api_settings
from tests.integration.conftest import RunningProjector
from tests.support import bearer, wait_until

HEADER = "X-Talk-Min-Position"


class HeldProjector:
    """A projector applying one event per batch that stops, inside the batch, before the
    first event of transaction ``hold_tx`` until ``release`` is set."""

    def __init__(self, settings) -> None:
        self.settings = settings.model_copy(update={"projector_batch_size": 1,
                                                    "projector_poll_interval": 0.05})
        self.hold_tx: int | None = None
        self.holding = asyncio.Event()
        self.release = asyncio.Event()
        self.running: RunningProjector | None = None

    def start(self, hold_tx: int) -> None:
        self.hold_tx = hold_tx
        self.running = RunningProjector(Projector(self.settings, before_batch=self._before))

    async def _before(self, conn: psycopg.AsyncConnection, events: Sequence[StoredEvent]) -> None:
        if self.hold_tx is not None and any(e.tx_id == self.hold_tx for e in events):
            self.holding.set()
            await self.release.wait()


@pytest.fixture()
async def setup(settings) -> AsyncIterator[tuple[TestClient, HeldProjector]]:
    held = HeldProjector(settings)
    client = TestClient(TestServer(build_up_app(api_settings(settings))))
    await client.start_server()
    try:
        yield client, held
    finally:
        held.release.set()
        await client.close()
        if held.running is not None:
            await held.running.close()


async def _command(client: TestClient, method: str, path: str, body: dict,
                   headers: dict[str, str]) -> tuple[dict, str]:
    resp = await client.request(method, path, json=body, headers=headers)
    assert resp.status == 200, await resp.text()
    return await resp.json(), resp.headers["X-Talk-Position"]


async def _waiting_on_a_lock(conn: psycopg.AsyncConnection) -> bool:
    cur = await conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()")
    return (await cur.fetchone())[0] > 0


async def test_the_greatest_token_covers_both_writes_where_the_greatest_position_does_not(
        setup, settings):
    client, held = setup
    alice = bearer(uuid4(), uuid4())
    chat_x, _ = await _command(client, "POST", CHATS, {"type": "group", "name": "x"}, alice)
    chat_y, _ = await _command(client, "POST", CHATS, {"type": "group", "name": "y"}, alice)
    message, _ = await _command(client, "POST", MESSAGES,
                                {"chat_id": chat_x["id"], "type": "normal", "text": "m"}, alice)

    async with await psycopg.AsyncConnection.connect(settings.database_url,
                                                     autocommit=True) as conn:
        # A: its transaction starts (the key is claimed), then it waits on a row it writes.
        async with conn.transaction():
            await conn.execute("SELECT 1 FROM streams WHERE stream_id = ANY(%s) FOR UPDATE",
                               ([f"chat-{chat_x['id']}", f"message-{message['id']}"],))
            a_task = asyncio.create_task(_command(
                client, "POST", f"{MESSAGES}/{message['id']}/reactions", {"emoji": "tada"},
                {**alice, "Idempotency-Key": uuid4().hex}))
            async with await psycopg.AsyncConnection.connect(settings.database_url,
                                                             autocommit=True) as watch:
                await wait_until(lambda: _waiting_on_a_lock(watch), timeout=15,
                                 what="A to wait on the held rows")
            # B: another talk, committed while A waits.
            b_message, b_token = await _command(
                client, "POST", MESSAGES,
                {"chat_id": chat_y["id"], "type": "normal", "text": "b"}, alice)
        _, a_token = await a_task  # the rows are released: A draws its position, commits

    a, b = parse_position(a_token), parse_position(b_token)
    assert isinstance(a, Checkpoint) and isinstance(b, Checkpoint)
    assert a.position > b.position and a.tx_id < b.tx_id, (
        "the setup must make positions and the projection's order disagree", a, b)
    assert len(a_token) == len(b_token) == 39
    assert max(a_token, b_token) == b_token and max(int(a_token), int(b_token)) == int(b_token)

    held.start(hold_tx=b.tx_id)
    await asyncio.wait_for(held.holding.wait(), 30)  # A applied, B not yet
    store = client.server.app[READ_STORE]
    assert await store.projection_reached(a) and not await store.projection_reached(b)

    b_path = f"{MESSAGES}/{b_message['id']}"
    # The old form names the event at a position: the greatest position is A's, applied.
    stale = await client.get(b_path, headers={**alice, HEADER: str(a.position)})
    assert stale.status == 404  # B is not in the read model yet
    # The greatest token (alone, or among several) waits for B.
    behind = _watch_waits(store)
    waiting = [asyncio.create_task(client.get(b_path, headers={**alice, HEADER: value}))
               for value in (max(a_token, b_token), f"{a_token},{b_token}",
                             f"{b_token}, {a_token}, {a.position}")]
    await asyncio.wait_for(behind.wait(), 10)
    assert not any(w.done() for w in waiting)
    held.release.set()
    for answer in await asyncio.gather(*waiting):
        assert answer.status == 200
        assert (await answer.json())["id"] == b_message["id"]
    assert format_position(b) == b_token


def _watch_waits(store) -> asyncio.Event:
    """Set once the query API has found the projection behind a target."""
    behind = asyncio.Event()
    check = store.projection_reached

    async def projection_reached(target) -> bool:
        reached = await check(target)
        if not reached:
            behind.set()
        return reached

    store.projection_reached = projection_reached
    return behind
