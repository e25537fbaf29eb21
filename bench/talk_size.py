"""Posting into a big talk costs what posting into a small one does (Talk 1.1, read state).

    python -m bench.talk_size [--members 1000] [--posts 300] [--rounds 3] [--concurrency 4]
                              [--admin-url postgresql://postgres@127.0.0.1:5432/postgres]

One database of its own (``talk_bench_size_<pid>``, created, migrated and dropped here), the
command API in this process (``command_api.app.create_app``, served by aiohttp's test server
on a local port), and two talks: one of 2 participants and one of ``--members``. Each round
posts ``--posts`` messages into each talk, 10 at a time, alternating between the talks (the
first one rotating each round; after 50 unmeasured warm-up posts into each), so that both
talks are measured over the same moments of a shared machine, with ``--concurrency``
requests in flight, by authors spread over the talk's members, and measures each ``POST /v1.0/service_agents/talk_messages`` from send to answer. Then the
projector (started after the posts, on the same database) applies them, and the time it took
per talk is printed too: the read-state counters mean a post writes the message, its talk and
its author's marker, never the other members' rows.

Prints mean / p50 / p99 per talk and the ratio large/small of the means (target <= 1.2);
nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from uuid import UUID, uuid4

import psycopg
from aiohttp.test_utils import TestClient, TestServer

from command_api.app import create_app
from projector.runner import Projector
from services.auth import mint_token
from services.migrate import apply_migrations
from services.settings import Settings

SECRET = "bench-secret-not-for-production-0123456789"
V = "/v1.0/service_agents"
BATCH = 10  # posts into one talk before the other's turn


def headers(customer: UUID, agent: UUID) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(SECRET, customer, agent, 24 * 3600)}"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def create_talk(client: TestClient, customer: UUID, members: list[UUID]) -> str:
    resp = await client.post(f"{V}/talk_chats", headers=headers(customer, members[0]), json={
        "type": "group",
        "participants": [{"owner_type": "agent", "owner_id": str(m)} for m in members[1:]]})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["id"]


async def post_many(client: TestClient, customer: UUID, chat_id: str, authors: list[UUID],
                    posts: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    queue = list(range(posts))

    async def worker() -> None:
        while queue:
            i = queue.pop()
            author = authors[i % len(authors)]
            started = time.perf_counter()
            resp = await client.post(f"{V}/talk_messages", headers=headers(customer, author),
                                     json={"chat_id": chat_id, "text": f"message {i}"})
            await resp.read()
            latencies.append(time.perf_counter() - started)
            assert resp.status == 200, await resp.text()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


async def projected(url: str, chat_id: str, expected: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            cur = await conn.execute("SELECT message_seq FROM rm_chats WHERE id = %s", (chat_id,))
            row = await cur.fetchone()
            if row and row[0] >= expected:
                return
            await asyncio.sleep(0.05)
    raise TimeoutError("the projector did not catch up")


async def main(args: argparse.Namespace) -> None:
    name = f"talk_bench_size_{os.getpid()}"
    base = args.admin_url.rsplit("/", 1)[0]
    url = f"{base}/{name}"
    async with await psycopg.AsyncConnection.connect(args.admin_url, autocommit=True) as admin:
        await admin.execute(f"CREATE DATABASE {name}")
    try:
        await apply_migrations(url)
        settings = Settings(database_url=url, jwt_secret=SECRET, log_level="WARNING")
        client = TestClient(TestServer(create_app(settings)))
        await client.start_server()
        customer = uuid4()
        small_members = [uuid4() for _ in range(2)]
        large_members = [uuid4() for _ in range(args.members)]
        talks = {
            "2": (await create_talk(client, customer, small_members), small_members),
            str(args.members): (await create_talk(client, customer, large_members),
                                large_members),
        }
        samples: dict[str, list[float]] = {k: [] for k in talks}
        order = list(talks)
        for chat_id, members in talks.values():  # warm-up (not measured): caches, plans
            await post_many(client, customer, chat_id, members[:50], 50, args.concurrency)
        for round_ in range(args.rounds):
            for _ in range(args.posts // BATCH):  # interleaved: both see the same machine
                for key in order[round_ % 2:] + order[:round_ % 2]:
                    chat_id, members = talks[key]
                    samples[key] += await post_many(client, customer, chat_id, members[:50],
                                                    BATCH, args.concurrency)
        await client.close()

        print(f"bench.talk_size: POST talk_messages, {args.rounds} rounds x {args.posts} posts"
              f" per talk, concurrency {args.concurrency}")
        means = {}
        for key, values in samples.items():
            means[key] = statistics.mean(values)
            print(f"  talk of {key:>5} participants: mean {means[key] * 1000:6.2f} ms  "
                  f"p50 {percentile(values, 0.5) * 1000:6.2f} ms  "
                  f"p99 {percentile(values, 0.99) * 1000:6.2f} ms  (n={len(values)})")
        ratio = means[str(args.members)] / means["2"]
        print(f"  ratio (mean, {args.members} / 2): {ratio:.2f} (target <= 1.2)")

        # The projector's side: apply every post (and the creations) from the start.
        projector = Projector(settings.model_copy(update={"projector_poll_interval": 0.05}))
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(projector.run(stop))
        per_talk = args.rounds * (args.posts // BATCH) * BATCH + 50 + 1
        for chat_id, _ in talks.values():
            await projected(url, chat_id, per_talk)
        print(f"  projector: all {2 * per_talk:,} messages (and both creations) applied in "
              f"{time.perf_counter() - started:.2f} s")
        stop.set()
        await task
    finally:
        async with await psycopg.AsyncConnection.connect(args.admin_url, autocommit=True) as admin:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--posts", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
