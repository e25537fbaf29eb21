"""Writers for the partition tests, through the real components: agents posting through the
command API into talks that cover every partition, whole talk lives (every event type)
through the command API, and appends straight to the event store (a talk created, then
renamed), each running until the test says stop. The last two wait for the projection of
what they wrote before writing more, so the volume follows the projection, not the time a
test takes to move partitions."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import partial
from uuid import UUID, uuid4

from aiohttp.test_utils import TestClient

from events.postgres_store import PostgresEventStore
from projector.partitioning import partition_of
from tests.factories import metadata, new_chat_append, rename
from tests.integration.partitions import progress
from tests.integration.projector.workload import one_talk_life
from tests.integration.publishing.caller import CHATS, Caller
from tests.support import wait_until


@dataclass
class Posters:
    """One agent of ``customer`` posting into talks of its own through the command API."""

    client: TestClient
    customer: UUID
    talks: list[str] = field(default_factory=list)
    posted: int = 0

    def __post_init__(self) -> None:
        self.agent = Caller(self.client, self.customer, uuid4())

    async def cover(self, partitions: int, per_partition: int = 1) -> dict[int, list[str]]:
        """Create talks until each of ``partitions`` holds ``per_partition`` of them (talks
        falling in a partition already full are created too, and posted into as well)."""
        by_partition: dict[int, list[str]] = {p: [] for p in range(partitions)}
        for _ in range(50 * partitions * per_partition):
            if all(len(t) >= per_partition for t in by_partition.values()):
                return by_partition
            chat, _ = await self.agent.create_group(uuid4(), name=f"talk {len(self.talks)}")
            self.talks.append(chat["id"])
            by_partition[partition_of(chat["id"], partitions)].append(chat["id"])
        raise AssertionError(f"talks in partitions {sorted(p for p, t in by_partition.items() if t)}"
                             f" only, after {len(self.talks)} talks")

    async def run(self, stop: asyncio.Event, writers: int = 4) -> None:
        """``writers`` concurrent posters, each going round the talks, until ``stop``."""

        async def poster(start: int) -> None:
            i = start
            while not stop.is_set():
                await self.agent.post(self.talks[i % len(self.talks)], f"message {i}")
                self.posted += 1
                i += writers

        await asyncio.gather(*(poster(n) for n in range(writers)))


@dataclass
class Lives:
    """Whole talk lives (every event type of the catalogue) through the command API, each
    followed by a read that waits for the projection to reach the life's last event
    (``X-Talk-Min-Position``), as a client reading its own writes does: so the writers go
    at the projection's pace, whichever processes hold the partitions."""

    client: TestClient
    customer: UUID
    done: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        reader = Caller(self.client, self.customer, uuid4())
        while not stop.is_set():
            last = await one_talk_life(self.client, self.customer)
            await reader.read(CHATS, last)
            self.done += 1


@dataclass
class StoreAppends:
    """Appends straight to the event store: a talk created, then renamed ``renames`` times,
    each its own transaction; then it waits for the talk's partition to have projected them
    (the writers go at the projection's pace)."""

    store: PostgresEventStore
    customer: UUID
    url: str
    partitions: int
    renames: int = 3
    appended: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            append, md = new_chat_append(customer_id=self.customer)
            await self.store.append([append], md)
            chat_id = append.events[0].event.chat_id
            for version in range(1, self.renames + 1):
                result = await self.store.append(
                    [rename(chat_id, version, f"name {version}")], metadata(self.customer))
            self.appended += 1 + self.renames
            partition = partition_of(chat_id, self.partitions)
            await wait_until(partial(progress.reached, self.url, self.partitions, partition,
                                     result.checkpoint),
                             timeout=30, what=f"partition {partition} at the writer's last append")
