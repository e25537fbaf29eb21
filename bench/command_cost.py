"""A command on a stream with a long history costs what it costs on a new one (issue 13: no
history read per command).

    python -m bench.command_cost [--changes 1000] [--reactions 50] [--cycles 60] [--rounds 3]
                                 [--admin-url postgresql://postgres@127.0.0.1:5432/postgres]

One database of its own (``talk_bench_cost_<pid>``, created, migrated and dropped here) and
the command API in this process (``command_api.app.create_app`` on aiohttp's test server),
commands sent one at a time. Two workloads, each on a fresh subject and on a busy one:

- **membership**: a talk of 2 (fresh) and a talk after ``--changes`` joins and leaves made
  through the API (busy); a cycle is: an agent joins, a post, the agent leaves, a post.
- **reactions**: a message with no reaction (fresh) and one with ``--reactions`` (busy), in
  the same talk; a cycle is: a reaction added, then removed.

A fresh talk and a fresh message are made for each block of cycles (unmeasured), so they
stay fresh; the busy ones only grow (two events per cycle). Each in two modes of the command
API's stream cache, side by side in the same run: **kept** (as shipped: after the process's
own append the cached stream is extended with what it appended, its folds go on over the new
events) and **dropped** (as before: the stream is dropped after an append, so the next
command on it reads it from version 0 and folds it whole). Modes and subjects alternate in
blocks of 10 cycles (after one unmeasured, which brings the cache to the block's mode), in
rotating order, so all four cells see the same moments of a shared machine. Per command
kind: mean / p50 / p99 latency (send to answer) and CPU of this process (server and client:
they share it), and the ratio busy / fresh of the means per mode (target: kept <= 1.2).
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from collections import defaultdict
from uuid import UUID, uuid4

import psycopg
from aiohttp.test_utils import TestClient, TestServer

from bench.talk_size import SECRET, V, headers, percentile
from command_api.app import create_app
from command_api.context import EVENT_STORE
from command_api.stream_cache import CachedEventStore
from services.logging import configure_logging
from services.migrate import apply_migrations
from services.settings import Settings

BLOCK = 10  # cycles of one cell before the next cell's turn
MODES = ("kept", "dropped")
SUBJECTS = ("fresh", "busy")

Sample = tuple[float, float]  # (seconds of latency, seconds of CPU)


class Api:
    """Commands through the in-process API, each timed (latency and this process's CPU)."""

    def __init__(self, client: TestClient, customer: UUID) -> None:
        self.client = client
        self.customer = customer

    async def call(self, agent: UUID, method: str, path: str, body: dict | None = None,
                   samples: list[Sample] | None = None) -> dict:
        started, cpu = time.perf_counter(), time.process_time()
        resp = await self.client.request(method, f"{V}/{path}", json=body,
                                         headers=headers(self.customer, agent))
        answer = await resp.json()
        if samples is not None:
            samples.append((time.perf_counter() - started, time.process_time() - cpu))
        assert resp.status == 200, answer
        return answer

    async def talk(self, creator: UUID, members: list[UUID]) -> str:
        return (await self.call(creator, "POST", "talk_chats", {
            "type": "group",
            "participants": [{"owner_type": "agent", "owner_id": str(m)} for m in members]}))["id"]

    async def join(self, actor: UUID, chat: str, agent: UUID, samples=None) -> str:
        return (await self.call(actor, "POST", f"talk_chats/{chat}/participants",
                                {"owner_type": "agent", "owner_id": str(agent)}, samples))["id"]

    async def leave(self, actor: UUID, chat: str, participant: str, samples=None) -> None:
        await self.call(actor, "DELETE", f"talk_chats/{chat}/participants/{participant}",
                        None, samples)

    async def post(self, author: UUID, chat: str, text: str, samples=None) -> str:
        return (await self.call(author, "POST", "talk_messages",
                                {"chat_id": chat, "type": "normal", "text": text}, samples))["id"]

    async def react(self, agent: UUID, message: str, emoji: str, samples=None) -> None:
        await self.call(agent, "POST", f"talk_messages/{message}/reactions", {"emoji": emoji},
                        samples)

    async def unreact(self, agent: UUID, message: str, emoji: str, samples=None) -> None:
        await self.call(agent, "DELETE", f"talk_messages/{message}/reactions", {"emoji": emoji},
                        samples)


def drop_after_append(store: CachedEventStore) -> None:
    """The cache as it was: a stream this process appended to is read afresh next time."""
    def appended(appends, result, metadata) -> None:
        for append in appends:
            if append.events:
                store.forget(append.stream_id)

    store.appended = appended  # type: ignore[method-assign]


def keep_after_append(store: CachedEventStore) -> None:
    store.__dict__.pop("appended", None)


async def main(args: argparse.Namespace) -> None:
    name = f"talk_bench_cost_{os.getpid()}"
    url = f"{args.admin_url.rsplit('/', 1)[0]}/{name}"
    async with await psycopg.AsyncConnection.connect(args.admin_url, autocommit=True) as admin:
        await admin.execute(f"CREATE DATABASE {name}")
    try:
        settings = Settings(database_url=url, jwt_secret=SECRET, log_level="WARNING")
        configure_logging(settings)
        await apply_migrations(url)
        client = TestClient(TestServer(create_app(settings)))
        await client.start_server()
        try:
            await run(args, client)
        finally:
            await client.close()
    finally:
        async with await psycopg.AsyncConnection.connect(args.admin_url, autocommit=True) as admin:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


async def run(args: argparse.Namespace, client: TestClient) -> None:
    api = Api(client, uuid4())
    store: CachedEventStore = client.app[EVENT_STORE]
    alice, bob, carol, dave = (uuid4() for _ in range(4))
    reactors = [uuid4() for _ in range(6)]

    started = time.perf_counter()
    talks = {"fresh": await api.talk(alice, [bob]), "busy": await api.talk(alice, [bob])}
    for _ in range(args.changes // 2):
        await api.leave(alice, talks["busy"], await api.join(alice, talks["busy"], carol))
    room = await api.talk(alice, reactors)
    messages = {"fresh": await api.post(alice, room, "fresh"),
                "busy": await api.post(alice, room, "busy")}
    for i in range(args.reactions):  # 5 agents x 10 emoji (a message holds at most 50 emoji)
        await api.react(reactors[i % 5], messages["busy"], f"e{i // 5}")
    print(f"bench.command_cost: set up {args.changes:,} membership changes and "
          f"{args.reactions} reactions through the API in {time.perf_counter() - started:.1f} s")

    samples: dict[tuple[str, str, str, str], list[Sample]] = defaultdict(list)

    async def renew(subject: str) -> None:
        """A new fresh talk and message for each block (a cycle leaves two events behind)."""
        if subject == "fresh":
            talks["fresh"] = await api.talk(alice, [bob])
            messages["fresh"] = await api.post(alice, room, "fresh")

    async def membership_cycle(mode: str, subject: str, measure: bool) -> None:
        def s(kind: str) -> list[Sample] | None:
            return samples[("membership", kind, mode, subject)] if measure else None
        chat = talks[subject]
        joined = await api.join(alice, chat, dave, s("join"))
        await api.post(bob, chat, "after a join", s("post after a change"))
        await api.leave(alice, chat, joined, s("leave"))
        await api.post(bob, chat, "after a leave", s("post after a change"))

    async def reaction_cycle(mode: str, subject: str, measure: bool) -> None:
        def s(kind: str) -> list[Sample] | None:
            return samples[("reactions", kind, mode, subject)] if measure else None
        await api.react(reactors[5], messages[subject], "e0", s("add reaction"))
        await api.unreact(reactors[5], messages[subject], "e0", s("remove reaction"))

    cells = [(mode, subject) for mode in MODES for subject in SUBJECTS]
    for cycle in (membership_cycle, reaction_cycle):
        for mode, subject in cells:  # warm-up: plans, connections, caches
            (drop_after_append if mode == "dropped" else keep_after_append)(store)
            await renew(subject)
            for _ in range(5):
                await cycle(mode, subject, False)
        for round_ in range(args.rounds):
            for block in range(args.cycles // BLOCK):
                turn = (round_ + block) % len(cells)
                for mode, subject in cells[turn:] + cells[:turn]:
                    (drop_after_append if mode == "dropped" else keep_after_append)(store)
                    await renew(subject)
                    await cycle(mode, subject, False)  # after the other mode: cache as it runs
                    for _ in range(BLOCK):
                        await cycle(mode, subject, True)
    keep_after_append(store)
    report(args, samples)


def report(args: argparse.Namespace, samples: dict[tuple, list[Sample]]) -> None:
    print(f"  {args.rounds} rounds x {args.cycles} cycles per cell, one command at a time; "
          f"busy = at least {args.changes:,} membership changes / {args.reactions} reactions;"
          f" fresh = new for each block of {BLOCK} cycles")
    print(f"  {'workload':<11} {'command':<20} {'mode':<8} {'fresh mean/p50/p99 ms':>24} "
          f"{'busy mean/p50/p99 ms':>24} {'ratio':>6} {'CPU ms fresh/busy':>18} {'ratio':>6}")
    kinds = sorted({(w, k) for w, k, _, _ in samples}, key=lambda wk: (wk[0] != "membership",))
    for workload, kind in kinds:
        for mode in MODES:
            fresh = samples[(workload, kind, mode, "fresh")]
            busy = samples[(workload, kind, mode, "busy")]

            def stats(values: list[Sample]) -> str:
                lat = [v[0] * 1000 for v in values]
                return (f"{statistics.mean(lat):6.2f}/{percentile(lat, 0.5):6.2f}/"
                        f"{percentile(lat, 0.99):6.2f}")

            def mean(values: list[Sample], i: int) -> float:
                return statistics.mean(v[i] for v in values) * 1000

            print(f"  {workload:<11} {kind:<20} {mode:<8} {stats(fresh):>24} {stats(busy):>24} "
                  f"{mean(busy, 0) / mean(fresh, 0):6.2f} "
                  f"{mean(fresh, 1):8.2f}/{mean(busy, 1):<8.2f}  {mean(busy, 1) / mean(fresh, 1):6.2f}")
    print("  target: ratio (mean latency, busy / fresh) <= 1.2 in mode kept")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--changes", type=int, default=1000, help="joins and leaves of the busy talk")
    parser.add_argument("--reactions", type=int, default=50, help="of the busy message (<= 50)")
    parser.add_argument("--cycles", type=int, default=60, help="per cell and round (x 10)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
