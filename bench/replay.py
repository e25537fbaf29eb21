"""Replaying the history (issue 6): a full rebuild of the read tables, an export and a hash
chain verify, each as events/s, next to a bare scan of the events table in the same run.

    python -m bench.replay [--events 1000000] [--talks 10000] [--chunk-size 10000]
                           [--live-sample 20000] [--workers 1,2] [--tasks] [--partitions 1]
                           [--rebuild-only] [--admin-url URL] [--database-url URL] [--keep]

1. Seed ``--events`` events across ``--talks`` talks (``bench.history``: every event type,
   rounds interleaving the talks) through the event store, so stream versions and the hash
   chain are what production writes. ``--database-url`` reuses a database seeded by an
   earlier run with ``--keep`` (seeding 1,000,000 events takes minutes).
2. ``live projector``: the live tables are emptied and the real ``Projector`` (per-event
   SQL in pipeline mode, 500 events a transaction) applies the first ``--live-sample``
   events (0: skipped): the path the rebuild replaces. Then the live checkpoint is set to
   the head by SQL, so the rebuild replays everything.
3. ``scan`` (the ceiling): ``COPY (SELECT * FROM events ORDER BY tx_id, position) TO
   STDOUT`` through psycopg, counting rows; run first and last, the figure is their mean.
4. ``rebuild``: ``projector.rebuild.rebuild_read_model`` in this process (replay, indexes,
   switch, drop of the old copy), once per ``--workers`` count (``--workers 1,2``: one
   replay, then the talks in two slices side by side, each in a process of its own; their
   CPU is counted in the client's); ``--tasks`` adds the largest count as tasks of this
   process (one core). ``--partitions N`` lays the live checkpoints out in N partitions
   (all at the head) first: each worker then keeps N checkpoint groups.
5. ``events export``: ``talk events export`` (ndjson) in a subprocess, lines counted.
6. ``events verify``: ``talk events verify`` in a subprocess (the hash chain).
7. ``projections verify``: ``projector.verify.verify_read_model`` (replay into a scratch
   schema and compare with the live tables); it must report them identical.

The machine is shared: the figures that matter are the ratios to the scan of the same run,
and the CPU per event of the client (this process, or the CLI's) and of the Postgres
backends serving it (sampled from /proc: a local server). Nothing is asserted; the verify
verdicts are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import structlog
from psycopg import sql

from bench.history import HistoryWriter
from events.envelope import Checkpoint
from projector.checkpoints import set_checkpoints
from projector.rebuild import rebuild_read_model
from projector.replay import CHUNK_SIZE
from projector.runner import Projector
from projector.verify import verify_read_model
from services.db import Database, make_pool
from services.migrate import apply_migrations
from services.settings import Settings

TARGET_REBUILD = 25_000  # events/s
TARGET_EXPORT_VERIFY = 0.5  # of the scan rate


@dataclass
class Step:
    name: str
    events: int
    seconds: float
    cpu: float | None = None  # client CPU seconds (this process, or the CLI subprocess)
    server_cpu: float | None = None  # CPU seconds of the Postgres backends serving it
    note: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


class Counter:
    """A progress sink that only counts (and prints a line every few seconds)."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.done = label, total, 0
        self._at = self.started = time.monotonic()
        self.replayed_in: float | None = None  # seconds until the total was first reached

    def __call__(self, n: int) -> None:
        self.done += n
        if self.replayed_in is None and self.done >= self.total:
            self.replayed_in = time.monotonic() - self.started
        if time.monotonic() - self._at >= 5:
            self._at = time.monotonic()
            say(f"  {self.label}: {self.done:,}/{self.total:,}")

    def finish(self) -> None:
        pass


STARTED = time.perf_counter()


def say(message: str) -> None:
    print(f"[{time.perf_counter() - STARTED:7.1f}s] {message}", file=sys.stderr, flush=True)


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


_CLK_TCK = os.sysconf("SC_CLK_TCK")


class ServerCpu:
    """CPU seconds used by the Postgres backends of one database (a local server), sampled
    every 0.2 s by a thread so that backends that come and go (a CLI's) are counted too."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ServerCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            me = conn.info.backend_pid
            while True:
                rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname ="
                                    " current_database() AND pid <> %s", (me,)).fetchall()
                for (pid,) in rows:
                    try:
                        with open(f"/proc/{pid}/stat") as f:
                            fields = f.read().rsplit(")", 1)[1].split()
                    except OSError:
                        continue  # not a local server, or gone
                    self.seen[pid] = (int(fields[11]) + int(fields[12])) / _CLK_TCK
                if self._stop.wait(0.2):
                    return

    def total(self) -> float:
        return sum(self.seen.values())


class Measure:
    """Wall, client CPU (this process and its children) and server CPU of one step."""

    def __init__(self, cpu: ServerCpu) -> None:
        self.cpu = cpu

    def __enter__(self) -> Measure:
        self.t = time.perf_counter()
        self.client = _client_cpu()
        self.server = self.cpu.total()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.t
        self.client = _client_cpu() - self.client
        time.sleep(0.3)  # one more sample of the backends
        self.server = self.cpu.total() - self.server

    def step(self, name: str, events: int, note: str = "") -> Step:
        return Step(name, events, self.seconds, self.client, self.server, note)


def _client_cpu() -> float:
    me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


async def scan(url: str) -> int:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        rows = 0
        async with conn.cursor().copy(
                "COPY (SELECT * FROM events ORDER BY tx_id, position) TO STDOUT") as copy:
            async for block in copy:
                rows += bytes(block).count(b"\n")
        return rows


async def live_sample(settings: Settings, events: int, partitions: int = 1) -> Step | None:
    """Empty the live tables, let the live projector apply the first ``events`` events, then
    move its checkpoint to the head (the rebuild replays everything)."""
    url = settings.require_database_url()
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        version = (await (await conn.execute(
            "SELECT version FROM read_model_version")).fetchone())[0]
        await conn.execute(f"TRUNCATE read_v{version}.rm_chats, read_v{version}.rm_participants,"
                           f" read_v{version}.rm_messages")
        await conn.execute("UPDATE projector_checkpoints SET last_tx = '0', last_pos = 0"
                           " WHERE name = 'read_model'")
        cur = await conn.execute(
            "SELECT tx_id::text::bigint, position FROM events ORDER BY events.tx_id,"
            " events.position OFFSET %s LIMIT 1", (max(events, 1) - 1,))
        target = await cur.fetchone()
    step = None
    if events and target:
        projector = Projector(settings)
        stop = asyncio.Event()
        with ServerCpu(url) as server, Measure(server) as m:
            task = asyncio.create_task(projector.run(stop))
            while (projector.checkpoint.tx_id, projector.checkpoint.position) < tuple(target):
                await asyncio.wait_for(projector.applied.wait(), 60)  # set after each batch
            stop.set()
            await task
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT count(*) FROM events WHERE (tx_id, position) <= (%s::text::xid8, %s)",
                (str(projector.checkpoint.tx_id), projector.checkpoint.position))
            applied = (await cur.fetchone())[0]
        step = m.step("live projector (per-event SQL, batches of 500)", applied)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT tx_id::text::bigint, position FROM events"
                                 " ORDER BY tx_id DESC, position DESC LIMIT 1")
        tx, position = await cur.fetchone()
        async with conn.transaction():
            await set_checkpoints(conn, "read_model", Checkpoint(tx, position), partitions)
    return step


def cli(url: str, *args: str) -> tuple[int, int, str]:
    """``talk ARGS``: exit code, lines of stdout, stderr."""
    env = {**os.environ, "TALK_DATABASE_URL": url, "TALK_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = 0
    assert proc.stdout is not None and proc.stderr is not None
    while block := proc.stdout.read(1 << 20):
        lines += block.count(b"\n")
    err = proc.stderr.read().decode()
    return proc.wait(), lines, err


async def run(args: argparse.Namespace) -> list[Step]:
    url = args.database_url
    settings = Settings(database_url=url, log_level="WARNING")
    steps: list[Step] = []
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        total = (await (await conn.execute("SELECT count(*) FROM events")).fetchone())[0]
    if total == 0:
        say(f"seeding {args.events:,} events across {args.talks:,} talks (load {load()})")
        t = time.perf_counter()
        writer = HistoryWriter(url, events=args.events, talks=args.talks)
        await writer.write(Counter("seeded", args.events))
        total = writer.written
        steps.append(Step("seed (talk_append_events)", total, time.perf_counter() - t))
        say(f"seeded {total:,} events in {steps[-1].seconds:.0f}s")
    else:
        say(f"reusing {total:,} seeded events")
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("VACUUM (ANALYZE) events")  # as autovacuum leaves a settled table
    say(f"live projector on the first {args.live_sample:,} events (load {load()})")
    if (sample := await live_sample(settings, min(args.live_sample, total),
                                    args.partitions)) is not None:
        steps.append(sample)
        say(f"live projector: {sample.rate:,.0f} events/s")

    with ServerCpu(url) as server:
        say(f"scan (load {load()})")
        with Measure(server) as m:
            rows = await scan(url)
        scans = [m.step("scan", rows)]
        say(f"scan: {scans[0].rate:,.0f} events/s")

        pool = make_pool(settings, min_size=1, max_size=3 * max(args.workers) + 2,
                         name="bench-replay")
        await pool.open()
        try:
            db = Database(pool)
            runs = [(k, True) for k in args.workers]
            if args.tasks:
                runs.append((max(args.workers), False))
            for workers, processes in runs:
                how = ("" if workers == 1 else " in processes" if processes else
                       " as tasks of one process")
                say(f"rebuild, {workers} worker(s){how} (load {load()})")
                bars: list[Counter] = []

                def bar(label: str, total: int, bars: list[Counter] = bars) -> Counter:
                    bars.append(Counter(label, total))
                    return bars[-1]

                with Measure(server) as m:
                    result = await rebuild_read_model(
                        db, progress=bar, chunk_size=args.chunk_size, workers=workers,
                        processes=processes, partitions=args.partitions)
                replayed = bars[0].replayed_in or m.seconds
                steps.append(m.step(f"rebuild (`talk projections rebuild --workers {workers}`)"
                                    f"{how}", result.events,
                                    f"into {result.schema}; the replay {replayed:.1f}s"
                                    f" ({result.events / replayed:,.0f}/s), then indexes and"
                                    f" switch; load {load()}"))
                say(f"rebuild: {steps[-1].rate:,.0f} events/s")

            if args.rebuild_only:
                return await _with_scans(steps, scans, url, args, server)
            say(f"events export (load {load()})")
            with Measure(server) as m:
                code, lines, err = cli(url, "events", "export", "--format", "ndjson")
            steps.append(m.step("`talk events export` (ndjson)", lines,
                                f"exit {code}" + (f": {err.strip()[-200:]}" if code else "")))
            say(f"export: {steps[-1].rate:,.0f} events/s")

            say(f"events verify (load {load()})")
            with Measure(server) as m:
                code, _, err = cli(url, "events", "verify")
            steps.append(m.step("`talk events verify` (hash chain)", total,
                                f"exit {code}" + ("" if code == 0 else f": {err.strip()[-200:]}")))
            say(f"events verify: {steps[-1].rate:,.0f} events/s")

            say(f"projections verify (load {load()})")
            with Measure(server) as m:
                verdict = await verify_read_model(db, progress=Counter,
                                                  chunk_size=args.chunk_size)
            steps.append(m.step("`talk projections verify`", verdict.events,
                                "identical" if verdict.identical else "DIFFERENT"))
            say(f"projections verify: {steps[-1].rate:,.0f} events/s")
        finally:
            await pool.close()

        return await _with_scans(steps, scans, url, args, server)


async def _with_scans(steps: list[Step], scans: list[Step], url: str, args: argparse.Namespace,
                      server: ServerCpu) -> list[Step]:
    """The steps, and last the scan: the mean of the one before them and one after."""
    say(f"scan again (load {load()})")
    with Measure(server) as m:
        rows = await scan(url)
    scans.append(m.step("scan", rows))
    first, last = scans
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT count(*) FROM streams WHERE stream_id LIKE 'chat-%%'")
        args.talks = (await cur.fetchone())[0]  # as stored (a reused database may differ)
    steps.append(Step("scan (`COPY (SELECT * FROM events ...) TO STDOUT`)", first.events,
                      (first.seconds + last.seconds) / 2, (first.cpu + last.cpu) / 2,
                      (first.server_cpu + last.server_cpu) / 2,
                      f"first {first.rate:,.0f}/s, last {last.rate:,.0f}/s"))
    return steps


def report(steps: list[Step], args: argparse.Namespace) -> str:
    scan_step = steps[-1]
    out = ["| step | events | seconds | events/s | vs scan | client CPU/event"
           " | server CPU/event | note |",
           "|---|---:|---:|---:|---:|---:|---:|---|"]
    for s in [scan_step, *steps[:-1]]:
        out.append(f"| {s.name} | {s.events:,} | {s.seconds:.1f} | {s.rate:,.0f} |"
                   f" {s.rate / scan_step.rate:.2f} | {_per_event(s.cpu, s.events)} |"
                   f" {_per_event(s.server_cpu, s.events)} | {s.note} |")
    rebuilds = [s for s in steps if s.name.startswith("rebuild")]
    rebuild = rebuilds[0].rate
    lines = ["", f"targets: rebuild >= {TARGET_REBUILD:,} events/s -> {rebuild:,.0f}"
             f" ({'met' if rebuild >= TARGET_REBUILD else 'NOT met'})"]
    for step in rebuilds[1:]:
        lines.append(f"         {step.name}: {step.rate / rebuild:.2f}x the first rebuild's"
                     " events/s")
    for key in ("`talk events export`", "`talk events verify`"):
        step = next((s for s in steps if s.name.startswith(key)), None)
        if step is not None:
            ratio = step.rate / scan_step.rate
            lines.append(f"         {key.strip('`')} >= {TARGET_EXPORT_VERIFY:.0%} of the scan ->"
                         f" {ratio:.0%} ({'met' if ratio >= TARGET_EXPORT_VERIFY else 'NOT met'})")
    return "\n".join(out + lines)


def _per_event(seconds: float | None, events: int) -> str:
    return f"{seconds / events * 1e6:.0f} us" if seconds is not None and events else ""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--talks", type=int, default=10_000)
    p.add_argument("--chunk-size", type=int, default=CHUNK_SIZE,
                   help=f"events per replay transaction (default {CHUNK_SIZE:,})")
    p.add_argument("--live-sample", type=int, default=20_000,
                   help="events the live projector applies for comparison (0: skip)")
    p.add_argument("--workers", type=lambda t: [int(k) for k in t.split(",")], default=[1, 2],
                   help="the worker counts to rebuild with, one rebuild each (default 1,2)")
    p.add_argument("--tasks", action="store_true",
                   help="also rebuild with the most workers as tasks of this process")
    p.add_argument("--rebuild-only", action="store_true",
                   help="only the scan and the rebuilds (no export, events or projections verify)")
    p.add_argument("--partitions", type=int, default=1,
                   help="lay the live checkpoints out in this many partitions first")
    add_database_arguments(p)
    args = p.parse_args(argv)
    if (args.events < 1 or args.talks < 1 or args.chunk_size < 1 or args.partitions < 1
            or min(args.workers) < 1):
        p.error("events, talks, chunk size, workers and partitions must be positive")
    return args


def add_database_arguments(p: argparse.ArgumentParser) -> None:
    """``--admin-url``, ``--database-url`` and ``--keep``: what :func:`bench_database` reads."""
    p.add_argument("--admin-url", default=os.environ.get(
        "TALK_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a superuser URL to create and drop the bench database (env TALK_BENCH_ADMIN_URL)")
    p.add_argument("--database-url", help="reuse this (seeded, migrated) database; kept")
    p.add_argument("--keep", action="store_true", help="keep the bench database")


@contextlib.contextmanager
def bench_database(args: argparse.Namespace, prefix: str) -> Iterator[None]:
    """``args.database_url``, or a fresh database made on ``args.admin_url`` (dropped at the
    end unless ``args.keep``), migrated; the bench runs inside. Quiet logs."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)
    created = None
    if not args.database_url:
        created = f"{prefix}_{os.getpid()}"
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(created)))
        args.database_url = psycopg.conninfo.make_conninfo(args.admin_url, dbname=created)
    try:
        asyncio.run(apply_migrations(args.database_url))
        yield
    finally:
        if created and not args.keep:
            with psycopg.connect(args.admin_url, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(created)))
        elif created:
            say(f"kept database {created}: --database-url {args.database_url}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    start_load = load()
    with bench_database(args, "talk_bench_replay"):
        steps = asyncio.run(run(args))
    print(f"bench.replay: {steps[-1].events:,} events, {args.talks:,} talks, chunk"
          f" {args.chunk_size:,}, {args.partitions} partition(s);"
          f" os.cpu_count()={os.cpu_count()}; load average at start"
          f" {start_load}, at end {load()}")
    print(report(steps, args))


if __name__ == "__main__":
    main()
