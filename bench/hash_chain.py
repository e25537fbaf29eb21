"""What the hash chain (migration 0004) costs on append, side by side with the store
without it (issue 6).

    python -m bench.hash_chain [--seconds 3] [--rounds 3] [--concurrency 1,8]
                               [--admin-url URL] [--keep]

Systems, each in its own fresh database, driven exactly as ``bench.append`` drives ``talk``
(``PostgresEventStore.append`` through ``services.db``):

``before``        every migration, then (in this bench database only) ``talk_event_hash``
                  replaced by one answering the previous hash: the same statements and
                  rows, no hashing.
``chain``         every migration: the hash chain and the audit index.
``chain-noindex`` every migration, minus the partial index ``events_messages_by_chat``
                  (what the chain alone costs).

Workloads: ``post`` is ``bench.append``'s event (a ``MessagePosted`` to a new stream, one
event per transaction); ``edit`` is a ``MessageEdited`` appended to an existing message
stream together with the version check on its talk's stream (what ``PUT talk_messages``
appends: it takes the path that locks and reads an existing stream's head hash).

Rounds interleave the systems in rotating order; figures are total events / total measured
seconds over the rounds, and ratios are to ``before`` in the same run. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from uuid import uuid4

import psycopg
import structlog

from bench.append import (
    AGENT_ID,
    CHAT_ID,
    CUSTOMER_ID,
    Measure,
    aggregate,
    backend_pids,
    create_databases,
    drive_async,
    drop_databases,
    new_message,
    server_note,
)
from bench.append import System as _System
from events.catalogue import ChatCreated, MessageEdited, chat_stream, message_stream
from events.envelope import Metadata, NewEvent
from events.postgres_store import PostgresEventStore
from events.store import StreamAppend
from services.db import Database, make_pool
from services.migrate import apply_migrations
from services.settings import load_settings

SYSTEMS = ("before", "chain", "chain-noindex")
WORKLOADS = ("post", "edit")
# The chain's computation taken out: every append statement calls talk_event_hash.
NO_HASH = """
CREATE OR REPLACE FUNCTION talk_event_hash(
    p_prev bytea, p_event_id uuid, p_stream_id text, p_version bigint, p_type text,
    p_schema_version integer, p_recorded_at timestamptz, p_data jsonb, p_metadata jsonb
) RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$ SELECT p_prev $$
"""
EDIT_STREAMS = 64  # existing message streams the edit workload cycles through


class ChainBench(_System):
    edit_ids: list

    def setup(self) -> None:
        asyncio.run(apply_migrations(self.url))
        if self.key == "before":
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute(NO_HASH)
        if self.key == "chain-noindex":
            with psycopg.connect(self.url, autocommit=True) as conn:
                conn.execute("DROP INDEX events_messages_by_chat")
        asyncio.run(self._seed())

    async def _seed(self) -> None:
        """The talk and the message streams the edit workload appends to."""
        async with self._store(1) as store:
            chat = chat_stream(CHAT_ID)
            created = ChatCreated(chat_id=CHAT_ID, customer_id=CUSTOMER_ID, type="group",
                                  name="bench", detail="", tm_create=datetime.now(UTC))
            metadata = Metadata(CUSTOMER_ID, "agent", AGENT_ID)
            await store.append([StreamAppend(chat, 0, [NewEvent(chat, created)])], metadata)
            self.edit_ids = []
            for _ in range(EDIT_STREAMS):
                message_id, stream, event, metadata = new_message()
                await store.append([StreamAppend(stream, 0, [NewEvent(stream, event)])], metadata)
                self.edit_ids.append(message_id)

    @asynccontextmanager
    async def _store(self, size: int) -> AsyncIterator[PostgresEventStore]:
        settings = load_settings(database_url=self.url)
        pool = make_pool(settings, min_size=size, max_size=size, name="bench")
        await pool.open(wait=True, timeout=30)
        try:
            yield PostgresEventStore(Database(pool))
        finally:
            await pool.close()

    def run(self, workload: str, concurrency: int, warmup: float, seconds: float) -> Measure:
        return asyncio.run(self._run(workload, concurrency, warmup, seconds))

    async def _run(self, workload: str, concurrency: int, warmup: float, seconds: float) -> Measure:
        async with self._store(concurrency) as store:
            if workload == "post":
                async def op() -> None:
                    _, stream, event, metadata = new_message()
                    await store.append([StreamAppend(stream, 0, [NewEvent(stream, event)])],
                                       metadata)
            else:
                # Each worker owns its streams, so no append conflicts.
                versions = {mid: await store.stream_version(message_stream(mid))
                            for mid in self.edit_ids}
                chat_version = await store.stream_version(chat_stream(CHAT_ID))
                cursor = {"n": 0}

                async def op() -> None:
                    n = cursor["n"] = cursor["n"] + 1
                    mid = self.edit_ids[n % len(self.edit_ids)]
                    while versions[mid] < 0:  # another worker is appending to it
                        n += 1
                        mid = self.edit_ids[n % len(self.edit_ids)]
                    version, versions[mid] = versions[mid], -1
                    stream = message_stream(mid)
                    event = MessageEdited(message_id=mid, chat_id=CHAT_ID, text=f"edit {uuid4()}",
                                          tm_update=datetime.now(UTC))
                    metadata = Metadata(CUSTOMER_ID, "agent", AGENT_ID, request_id=uuid4().hex)
                    await store.append([StreamAppend(stream, version, [NewEvent(stream, event)]),
                                        StreamAppend(chat_stream(CHAT_ID), chat_version, ())],
                                       metadata)
                    versions[mid] = version + 1

            return await drive_async(op, concurrency, warmup, seconds, backend_pids(self.url))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.hash_chain",
                                description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=3.0, help="measured seconds per cell per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--concurrency", default="1,8")
    p.add_argument("--admin-url", default=os.environ.get(
        "TALK_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    p.add_argument("--keep", action="store_true", help="keep the bench databases")
    args = p.parse_args(argv)
    args.concurrencies = [int(x) for x in args.concurrency.split(",") if x.strip()]
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    prefix = f"talk_bench_chain_{os.getpid()}"
    systems = [ChainBench(k, args.admin_url, prefix) for k in SYSTEMS]
    started = time.perf_counter()
    results: dict[tuple[str, str, int], list[Measure]] = defaultdict(list)
    create_databases(args.admin_url, systems)
    try:
        for s in systems:
            s.setup()
        for rnd in range(args.rounds):
            order = systems[rnd % len(systems):] + systems[:rnd % len(systems)]
            for workload in WORKLOADS:
                for c in args.concurrencies:
                    for s in order:
                        m = s.run(workload, c, args.warmup, args.seconds)
                        results[(workload, s.key, c)].append(m)
                        print(f"[{time.perf_counter() - started:6.1f}s] round {rnd + 1} "
                              f"{workload:<4} c={c:<2} {s.key:<14} {m.rate:8,.0f} events/s",
                              file=sys.stderr, flush=True)
    finally:
        if not args.keep:
            drop_databases(args.admin_url, systems)

    print(f"bench.hash_chain: {args.rounds} rounds x {args.seconds:g}s per cell "
          f"(+{args.warmup:g}s warm-up), systems interleaved; os.cpu_count()={os.cpu_count()}")
    print(f"server: {server_note(args.admin_url)}")
    print()
    print("| workload | concurrency | before events/s | chain events/s | chain/before "
          "| chain without audit index events/s | that/before |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for workload in WORKLOADS:
        for c in args.concurrencies:
            before, chain, bare = (aggregate(results[(workload, k, c)]) for k in SYSTEMS)
            print(f"| {workload} | {c} | {before.rate:,.0f} | {chain.rate:,.0f} "
                  f"| {chain.rate / before.rate:.2f} | {bare.rate:,.0f} "
                  f"| {bare.rate / before.rate:.2f} |")
    print()
    print("Postgres backend CPU per event (us; the append's own work, less sensitive to the "
          "disk and to other load than events/s):")
    print()
    print("| workload | concurrency | before | chain | chain/before | chain without audit index "
          "| that/before |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for workload in WORKLOADS:
        for c in args.concurrencies:
            before, chain, bare = (_server_us(aggregate(results[(workload, k, c)]))
                                   for k in SYSTEMS)
            print(f"| {workload} | {c} | {before:,.0f} | {chain:,.0f} | {chain / before:.2f} "
                  f"| {bare:,.0f} | {bare / before:.2f} |")


def _server_us(m: Measure) -> float:
    return m.server_cpu / m.events * 1e6 if m.events else float("nan")

if __name__ == "__main__":
    main()
