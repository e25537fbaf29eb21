"""The live projector's catch-up rate (issue 13): `talk projector` processes applying a
backlog from checkpoint 0 to the head, next to `talk projections rebuild` of the same events
in the same run.

    python -m bench.projector [--events 100000] [--talks 1000] [--partitions 1,2,4]
                              [--processes 1,2] [--batch-size 2000] [--no-verify]
                              [--admin-url URL] [--database-url URL] [--keep]

1. Seed ``--events`` events across ``--talks`` talks through the event store
   (``bench.history``'s rounds: posts, replies, edits, reactions and their removal,
   deletions, renames, joins and leaves) plus read markers (``ChatRead``, about one event
   in ten). ``--database-url`` reuses a database seeded by an earlier run with ``--keep``.
2. For each ``--partitions`` x ``--processes``: the live read tables are emptied and the
   live checkpoints removed, then that many ``talk projector`` processes (separate
   processes, as deployed; no ``TALK_AMQP_URL``, so no outbox) start with
   ``TALK_PROJECTOR_PARTITIONS`` set. The rate counts from the first batch committed (the
   processes' start-up excluded) to the last event, from ``talk_events_projected_total`` on
   their ``/metrics``; CPU seconds of the projector processes and of the Postgres backends
   come from /proc. The processes share the partitions through their locks (with one
   partition, a second process stands by: its polling is in the CPU figure).
3. ``projections verify`` (unless ``--no-verify``): the live tables of the last
   configuration against a replay; it must say identical.
4. ``talk projections rebuild`` in a subprocess: its own figure (replay, indexes and switch)
   and the process's wall time.

The machine is small and shared: what matters is the ratio live / rebuild of the same run,
and the CPU per event.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg

from bench.history import HistoryWriter, Talk
from bench.realtime import cpu_seconds
from bench.replay import (
    Counter,
    Measure,
    ServerCpu,
    add_database_arguments,
    bench_database,
    load,
    say,
)
from events import catalogue as ev
from projector.verify import verify_read_model
from services.db import Database, make_pool
from services.settings import Settings

READ_SHARE = 0.1  # of the activity: an agent reads the talk up to its newest message
BENCH_SECRET = "bench-projector-secret-0123456789abcdef"
_PROJECTED = re.compile(r"^talk_events_projected_total(?:\{[^}]*\})? ([0-9.e+]+)$", re.M)
_REBUILT = re.compile(r"from ([0-9,]+) events in ([0-9.]+)s \(([0-9,]+) events/s")


class HistoryWithReads(HistoryWriter):
    """``bench.history``'s talks, with agents reading them now and then."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.posted_at: dict[UUID, datetime] = {}

    def _emit(self, batch: list, stream: str, event: ev.Event) -> None:
        if isinstance(event, ev.MessagePosted):
            self.posted_at[event.message_id] = event.tm_create
        super()._emit(batch, stream, event)

    def _activity(self, talk: Talk, agents: list[UUID], batch: list) -> None:
        live = [m for m in talk.recent if not m.deleted]
        if live and talk.members and self.rng.random() < READ_SHARE:
            agent = self.rng.choice(list(talk.members))
            message = live[-1].id
            self._emit(batch, ev.read_stream(talk.id, agent), ev.ChatRead(
                chat_id=talk.id, participant_id=talk.members[agent], owner_type="agent",
                owner_id=agent, message_id=message, message_tm_create=self.posted_at[message],
                tm_read=self.now()))
            return
        super()._activity(talk, agents, batch)


@dataclass
class Run:
    name: str
    events: int
    seconds: float
    client_cpu: float
    server_cpu: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0




def _projected(port: int) -> float | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    m = _PROJECTED.search(text)
    return float(m.group(1)) if m else 0.0


async def reset_live(url: str) -> None:
    """Empty the live read tables and drop the live checkpoints (a projector starting with
    none lays them out for its number of partitions, at the start)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        version = (await (await conn.execute(
            "SELECT version FROM read_model_version")).fetchone())[0]
        await conn.execute(f"TRUNCATE read_v{version}.rm_chats, read_v{version}.rm_participants,"
                           f" read_v{version}.rm_messages")
        await conn.execute("DELETE FROM projector_checkpoints WHERE name = 'read_model'")
        await conn.execute("DELETE FROM outbox")
        await conn.execute(f"VACUUM ANALYZE read_v{version}.rm_chats,"
                           f" read_v{version}.rm_participants, read_v{version}.rm_messages")


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def live_run(url: str, total: int, partitions: int, processes: int,
                   batch_size: int) -> Run:
    await reset_live(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALK_")}
    env.update(TALK_DATABASE_URL=url, TALK_LOG_LEVEL="WARNING", TALK_JWT_SECRET=BENCH_SECRET,
               TALK_PROJECTOR_PARTITIONS=str(partitions),
               TALK_PROJECTOR_BATCH_SIZE=str(batch_size), PYTHONUNBUFFERED="1")
    ports = [_free_port() for _ in range(processes)]
    logs = [tempfile.TemporaryFile() for _ in ports]
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", "projector",
        env={**env, "TALK_PROJECTOR_PORT": str(port)}, stdout=log, stderr=log)
        for port, log in zip(ports, logs, strict=True)]
    name = f"live: {processes} x `talk projector`, {partitions} partition(s)"
    try:
        with ServerCpu(url) as server:
            started = first = None
            done = 0.0
            deadline = time.monotonic() + 600
            while done < total:
                if time.monotonic() > deadline or any(p.returncode is not None for p in procs):
                    output = b"".join(_read(log) for log in logs).decode(errors="replace")
                    raise RuntimeError(f"{name}: stuck at {done:,.0f} of {total:,} events or a"
                                       f" process ended:\n{output[-2000:]}")
                counts = [_projected(port) for port in ports]
                done = sum(c or 0.0 for c in counts)
                if first is None and done > 0:
                    # the first batch committed: from here on (start-up excluded)
                    first, first_done = time.perf_counter(), done
                    cpu0 = sum(cpu_seconds(p.pid) for p in procs)
                    server0 = server.total()
                    started = True
                await asyncio.sleep(0.02)
            seconds = time.perf_counter() - first
            cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu0
            await asyncio.sleep(0.3)  # one more sample of the backends
            server_cpu = server.total() - server0
        assert started
        return Run(name, int(total - first_done), seconds, cpu, server_cpu,
                   f"batches of {batch_size}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                await asyncio.wait_for(p.wait(), 10)
            except TimeoutError:
                p.kill()
                await p.wait()
        for log in logs:
            log.close()


def _read(log) -> bytes:
    log.seek(0)
    return log.read()


def rebuild_cli(url: str) -> tuple[Run, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALK_")}
    env.update(TALK_DATABASE_URL=url, TALK_LOG_LEVEL="WARNING", TALK_JWT_SECRET=BENCH_SECRET)
    with ServerCpu(url) as server, Measure(server) as m:
        proc = subprocess.run([sys.executable, "-m", "services.cli", "projections", "rebuild"],
                              env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"rebuild failed ({proc.returncode}): {proc.stderr[-500:]}")
    found = _REBUILT.search(proc.stdout)
    events = int(found.group(1).replace(",", "")) if found else 0
    own = (f"its own figure {found.group(3)} events/s over {found.group(2)}s (replay, indexes,"
           " switch)") if found else proc.stdout.strip()
    return Run("rebuild: `talk projections rebuild` (process wall time)", events, m.seconds,
               m.client, m.server), own


async def seed(url: str, events: int, talks: int) -> int:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        total = (await (await conn.execute("SELECT count(*) FROM events")).fetchone())[0]
    if total:
        say(f"reusing {total:,} seeded events")
        return total
    say(f"seeding {events:,} events across {talks:,} talks (load {load()})")
    writer = HistoryWithReads(url, events=events, talks=talks)
    await writer.write(Counter("seeded", events))
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("VACUUM (ANALYZE) events")
    return writer.written


async def run(args: argparse.Namespace) -> tuple[list[Run], list[str]]:
    url = args.database_url
    total = await seed(url, args.events, args.talks)
    runs: list[Run] = []
    notes: list[str] = []
    for partitions in args.partitions:
        for processes in args.processes:
            say(f"live projector: {processes} process(es), {partitions} partition(s)"
                f" (load {load()})")
            runs.append(await live_run(url, total, partitions, processes, args.batch_size))
            say(f"{runs[-1].name}: {runs[-1].rate:,.0f} events/s")
    if args.verify:
        say(f"projections verify (load {load()})")
        pool = make_pool(Settings(database_url=url, log_level="WARNING"), min_size=1,
                         max_size=4, name="bench-projector")
        await pool.open()
        try:
            verdict = await verify_read_model(Database(pool), progress=Counter)
        finally:
            await pool.close()
        notes.append(f"projections verify after the last live run: {verdict.events:,} events,"
                     f" {'identical' if verdict.identical else 'DIFFERENT'}")
        if not verdict.identical:
            notes.extend(str(d) for d in verdict.differences[:10])
    say(f"rebuild (load {load()})")
    rebuilt, own = rebuild_cli(url)
    runs.append(rebuilt)
    notes.append(f"rebuild: {own}")
    return runs, notes


def report(runs: list[Run], notes: list[str]) -> str:
    rebuild = runs[-1]
    lines = ["| run | events | seconds | events/s | x rebuild | projector CPU us/event |"
             " Postgres CPU us/event |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        ratio = r.rate / rebuild.rate if rebuild.rate else 0.0
        lines.append(f"| {r.name} | {r.events:,} | {r.seconds:.2f} | {r.rate:,.0f} |"
                     f" {ratio:.2f} | {1e6 * r.client_cpu / max(r.events, 1):.0f} |"
                     f" {1e6 * r.server_cpu / max(r.events, 1):.0f} |")
    return "\n".join(lines + [""] + notes)


def _numbers(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.projector",
                                description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--talks", type=int, default=1_000)
    p.add_argument("--partitions", type=_numbers, default=[1],
                   help="TALK_PROJECTOR_PARTITIONS values, comma-separated (default 1)")
    p.add_argument("--processes", type=_numbers, default=[1],
                   help="how many `talk projector` processes, comma-separated (default 1)")
    p.add_argument("--batch-size", type=int, default=Settings.model_fields["projector_batch_size"].default,
                   help="TALK_PROJECTOR_BATCH_SIZE (default: the setting's default)")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip `projections verify` of the live tables")
    add_database_arguments(p)
    args = p.parse_args(argv)
    if args.events < 1 or args.talks < 1 or args.batch_size < 1:
        p.error("events, talks and batch size must be positive")
    if not args.partitions or not args.processes or min(args.partitions + args.processes) < 1:
        p.error("partitions and processes must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start_load = load()
    with bench_database(args, "talk_bench_projector"):
        runs, notes = asyncio.run(run(args))
    print(f"bench.projector: {runs[-1].events:,} events; os.cpu_count()={os.cpu_count()};"
          f" load average at start {start_load}, at end {load()}")
    print(report(runs, notes))


if __name__ == "__main__":
    main()
