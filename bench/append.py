"""Append throughput of the event store, side by side with its ceiling and with the
``eventsourcing`` library (issue 2).

    python -m bench.append [--seconds 5] [--rounds 3] [--concurrency 1,8,32]
                           [--extra talk-0007,raw-notify,es-fn]
                           [--admin-url URL] [--keep]

Each "event" is a one-event transaction: a new ``MessagePosted`` (built from the catalogue,
with its ``Metadata``) appended to a new stream ``message-<id>``. Systems:

``talk``  ``PostgresEventStore.append([StreamAppend(stream, 0, [NewEvent(...)])], metadata)``
          through ``services.db`` (``make_pool`` sized to the concurrency) on a fresh database
          migrated with ``services.migrate.apply_migrations``.
``raw``   the ceiling: one autocommit ``INSERT`` (its own transaction, so the commit is
          implicit: one round trip) per event into a table with the same columns, psycopg 3
          async, an ``AsyncConnectionPool`` of the same size.
``es``    ``eventsourcing.postgres.PostgresApplicationRecorder.insert_events([StoredEvent])``
          with the library defaults (``PostgresDatastore(pool_size=N)``), synchronous, driven
          by N threads.

Investigation-only systems (``--extra``), each in its own scratch database:
``talk-0007``      the store as it was before migration 0008, side by side with today's: the
                   schema up to 0007 and the old client call, ``talk_append_events`` with ten
                   array parameters sent in binary (``ArrayFormEventStore``).
``raw-notify``     the raw insert plus ``pg_notify`` in the same statement/transaction.
``es-fn``          eventsourcing with ``enable_db_functions=True`` (one function call, no
                   ``LOCK TABLE``).

Fairness on a small noisy machine: all systems run in one process against the same server;
rounds interleave the systems (rotating the order each round), every cell gets the same
warm-up and measured time, and the figures are total events / total measured time over the
rounds. Each system has its own database (``talk_bench_<pid>_<system>``), dropped at the end.
Nothing is asserted: the targets are printed beside the measured ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

import orjson
import psycopg
import structlog
from psycopg import sql
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool

from events.catalogue import Media, MessagePosted, message_stream
from events.envelope import Metadata, NewEvent
from events.notifier import CommitNotifier
from events.postgres_store import ArrayFormEventStore, PostgresEventStore
from events.store import StreamAppend
from services.db import Database, make_pool
from services.migrate import apply_migrations
from services.settings import load_settings

MAIN_SYSTEMS = ("talk", "raw", "es")
EXTRA_SYSTEMS = ("talk-0007", "raw-notify", "es-fn")
LABELS = {
    "talk": "talk",
    "raw": "raw",
    "es": "eventsourcing",
    "talk-0007": "talk before 0008",
    "raw-notify": "raw + pg_notify",
    "es-fn": "eventsourcing db-function",
}
TARGET_CONCURRENCY = 32
TARGET_TALK_RAW = 0.70
TARGET_TALK_ES = 4.0

# --- the event every system appends ------------------------------------------------------

CUSTOMER_ID = UUID("6f1c2a5e-0c1b-4a7e-9a55-2b0d8e7f4c11")
AGENT_ID = UUID("0b9e4d3a-7f26-4c0e-8d1f-5a6b7c8d9e01")
CHAT_ID = UUID("c4a1f3e2-9b8d-4e7f-a6c5-d4b3a2f1e0d9")
TEXT = (
    "Hi! I checked the order with the warehouse: the replacement left this morning and the "
    "tracking link should work tonight. Ping me here if anything looks off."
)
MEDIAS = (Media(type="file", url="https://files.example.com/att/123/label.pdf", name="label.pdf"),)


def new_message() -> tuple[UUID, str, MessagePosted, Metadata]:
    """A realistic new message: its id, its stream, the event and the metadata."""
    message_id = uuid4()
    event = MessagePosted(
        message_id=message_id,
        chat_id=CHAT_ID,
        owner_type="agent",
        owner_id=AGENT_ID,
        type="normal",
        text=TEXT,
        medias=MEDIAS,
        tm_create=datetime.now(UTC),
    )
    metadata = Metadata(CUSTOMER_ID, "agent", AGENT_ID, request_id=uuid4().hex)
    return message_id, message_stream(message_id), event, metadata


# --- measuring ---------------------------------------------------------------------------


@dataclass
class Measure:
    events: int
    seconds: float
    client_cpu: float  # CPU seconds used by this process (all threads) while measuring
    server_cpu: float  # CPU seconds used by the Postgres backends serving the pool
    machine_busy: float  # share of the machine's CPU busy while measuring (0..1)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


def _cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine, from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _backends_cpu(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by these local server processes."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # not local, or gone
        ticks += int(fields[11]) + int(fields[12])
    return ticks / _CLK_TCK


def backend_pids(url: str) -> list[int]:
    """The server processes of every connection to this (bench-only) database."""
    with psycopg.connect(url, autocommit=True) as conn:
        me = conn.info.backend_pid
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                            " AND pid <> %s", (me,)).fetchall()
    return [r[0] for r in rows]


class _Window:
    """Counters snapshot at the start and end of the measured window."""

    def __init__(self, server_pids: list[int]) -> None:
        self.pids = server_pids

    def start(self, count: int) -> None:
        self.c0, self.t0, self.cpu0, self.srv0, self.ticks0 = (
            count, time.perf_counter(), time.process_time(), _backends_cpu(self.pids),
            _cpu_ticks())

    def stop(self, count: int) -> Measure:
        c1, t1, cpu1, srv1, ticks1 = (count, time.perf_counter(), time.process_time(),
                                      _backends_cpu(self.pids), _cpu_ticks())
        busy = ticks1[0] - self.ticks0[0]
        total = ticks1[1] - self.ticks0[1]
        return Measure(c1 - self.c0, t1 - self.t0, cpu1 - self.cpu0, srv1 - self.srv0,
                       busy / total if total else 0.0)


async def _sleep_or_fail(tasks: list[asyncio.Task], seconds: float) -> None:
    done, _ = await asyncio.wait(tasks, timeout=seconds, return_when=asyncio.FIRST_EXCEPTION)
    for task in done:
        task.result()  # a worker failed: raise its error
    if done:
        raise RuntimeError("a worker stopped early")


async def drive_async(op: Callable[[], Awaitable[object]], concurrency: int, warmup: float,
                      seconds: float, server_pids: list[int]) -> Measure:
    counts = [0] * concurrency
    stop = False

    async def worker(i: int) -> None:
        while not stop:
            await op()
            counts[i] += 1

    tasks = [asyncio.create_task(worker(i)) for i in range(concurrency)]
    window = _Window(server_pids)
    try:
        await _sleep_or_fail(tasks, warmup)
        window.start(sum(counts))
        await _sleep_or_fail(tasks, seconds)
        measure = window.stop(sum(counts))
    finally:
        stop = True
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return measure


def drive_threads(op: Callable[[], object], concurrency: int, warmup: float,
                  seconds: float, server_pids: list[int]) -> Measure:
    counts = [0] * concurrency
    stop = threading.Event()
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            while not stop.is_set():
                op()
                counts[i] += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
            stop.set()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for t in threads:
        t.start()
    window = _Window(server_pids)
    try:
        stop.wait(warmup)
        window.start(sum(counts))
        stop.wait(seconds)
        measure = window.stop(sum(counts))
    finally:
        stop.set()
        for t in threads:
            t.join()
    if errors:
        raise errors[0]
    return measure


# --- the systems -------------------------------------------------------------------------


def db_url(admin_url: str, dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(admin_url, dbname=dbname)


class System:
    key: str
    dbname: str
    url: str

    def __init__(self, key: str, admin_url: str, prefix: str) -> None:
        self.key = key
        self.dbname = f"{prefix}_{key.replace('-', '_')}"
        self.url = db_url(admin_url, self.dbname)

    def setup(self) -> None:
        raise NotImplementedError

    def cell(self, concurrency: int, warmup: float, seconds: float) -> Measure:
        raise NotImplementedError


class TalkStore(System):
    """Our store, exactly as the command API uses it; with ``before_0008`` (investigation
    only) the schema stops at migration 0007 and the append is the old client call."""

    def __init__(self, key: str, admin_url: str, prefix: str, *,
                 before_0008: bool = False) -> None:
        super().__init__(key, admin_url, prefix)
        self.before_0008 = before_0008

    def setup(self) -> None:
        asyncio.run(apply_migrations(self.url, up_to=7 if self.before_0008 else None))

    def cell(self, concurrency: int, warmup: float, seconds: float) -> Measure:
        return asyncio.run(self._cell(concurrency, warmup, seconds))

    async def _cell(self, concurrency: int, warmup: float, seconds: float) -> Measure:
        settings = load_settings(database_url=self.url)
        pool = make_pool(settings, min_size=concurrency, max_size=concurrency, name="bench")
        await pool.open(wait=True, timeout=30)
        db = Database(pool)
        # As the command API runs it: the wake-up NOTIFY after commit, coalesced.
        notifier = CommitNotifier(self.url)
        await notifier.start()
        store = (ArrayFormEventStore if self.before_0008 else PostgresEventStore)(db, notifier)
        try:
            async def op() -> None:
                _, stream, event, metadata = new_message()
                await store.append([StreamAppend(stream, 0, [NewEvent(stream, event)])],
                                   metadata)

            return await drive_async(op, concurrency, warmup, seconds, backend_pids(self.url))
        finally:
            await notifier.stop()
            await pool.close()


RAW_TABLE = """
CREATE TABLE raw_events (
    id          uuid PRIMARY KEY,
    stream      text NOT NULL,
    version     bigint NOT NULL,
    type        text NOT NULL,
    data        jsonb NOT NULL,
    metadata    jsonb NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream, version)
)"""
RAW_INSERT = (
    "INSERT INTO raw_events (id, stream, version, type, data, metadata)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)
RAW_INSERT_NOTIFY = (
    "WITH ins AS (INSERT INTO raw_events (id, stream, version, type, data, metadata)"
    " VALUES (%s, %s, %s, %s, %s, %s) RETURNING 1)"
    " SELECT pg_notify('talk_events', '') FROM ins"
)


class Raw(System):
    """The ceiling: one autocommit single-row INSERT per event (one round trip, one commit)."""

    def __init__(self, key: str, admin_url: str, prefix: str, *, notify: bool = False) -> None:
        super().__init__(key, admin_url, prefix)
        self.statement = RAW_INSERT_NOTIFY if notify else RAW_INSERT

    def setup(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(RAW_TABLE)

    def cell(self, concurrency: int, warmup: float, seconds: float) -> Measure:
        return asyncio.run(self._cell(concurrency, warmup, seconds))

    async def _cell(self, concurrency: int, warmup: float, seconds: float) -> Measure:
        pool = AsyncConnectionPool(self.url, min_size=concurrency, max_size=concurrency,
                                   kwargs={"autocommit": True}, open=False, name="bench-raw")
        await pool.open(wait=True, timeout=30)
        statement = self.statement
        try:
            async def op() -> None:
                message_id, stream, event, metadata = new_message()
                async with pool.connection() as conn:
                    await conn.execute(statement, (
                        message_id, stream, 1, event.event_type,
                        Jsonb(event.model_dump(mode="json")), Jsonb(metadata.to_json())))

            return await drive_async(op, concurrency, warmup, seconds, backend_pids(self.url))
        finally:
            await pool.close()


class EventSourcing(System):
    """``eventsourcing``'s Postgres application recorder, one StoredEvent per call, threads."""

    def __init__(self, key: str, admin_url: str, prefix: str, *, db_functions: bool = False) -> None:
        super().__init__(key, admin_url, prefix)
        self.db_functions = db_functions
        info = psycopg.conninfo.conninfo_to_dict(self.url)
        self.connect = {
            "dbname": self.dbname,
            "host": info.get("host", "127.0.0.1"),
            "port": info.get("port", 5432),
            "user": info.get("user", "postgres"),
            "password": info.get("password", ""),
        }

    def _datastore(self, pool_size: int):  # noqa: ANN202 - imported lazily
        from eventsourcing.postgres import PostgresDatastore

        return PostgresDatastore(**self.connect, pool_size=pool_size,
                                 enable_db_functions=self.db_functions)

    def setup(self) -> None:
        from eventsourcing.postgres import PostgresApplicationRecorder

        datastore = self._datastore(1)
        try:
            PostgresApplicationRecorder(datastore).create_table()
        finally:
            datastore.close()

    def cell(self, concurrency: int, warmup: float, seconds: float) -> Measure:
        from eventsourcing.persistence import StoredEvent
        from eventsourcing.postgres import PostgresApplicationRecorder

        datastore = self._datastore(concurrency)
        try:
            datastore.pool.open(wait=True, timeout=30)
            recorder = PostgresApplicationRecorder(datastore)
            topic = f"{MessagePosted.__module__}:{MessagePosted.__qualname__}"

            def op() -> None:
                message_id, _, event, metadata = new_message()
                state = orjson.dumps({"data": event.model_dump(mode="json"),
                                      "metadata": metadata.to_json()})
                recorder.insert_events([StoredEvent(message_id, 1, topic, state)])

            return drive_threads(op, concurrency, warmup, seconds, backend_pids(self.url))
        finally:
            datastore.close()


def make_system(key: str, admin_url: str, prefix: str) -> System:
    match key:
        case "talk":
            return TalkStore(key, admin_url, prefix)
        case "talk-0007":
            return TalkStore(key, admin_url, prefix, before_0008=True)
        case "raw":
            return Raw(key, admin_url, prefix)
        case "raw-notify":
            return Raw(key, admin_url, prefix, notify=True)
        case "es":
            return EventSourcing(key, admin_url, prefix)
        case "es-fn":
            return EventSourcing(key, admin_url, prefix, db_functions=True)
    raise ValueError(key)


# --- databases ---------------------------------------------------------------------------


def create_databases(admin_url: str, systems: list[System]) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for s in systems:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(s.dbname)))


def drop_databases(admin_url: str, systems: list[System]) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        for s in systems:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(s.dbname)))


def store_note(url: str) -> str:
    """Which migrations the talk database got, and a fingerprint of the append function."""
    with psycopg.connect(url, autocommit=True) as conn:
        (versions,) = conn.execute(
            "SELECT array_agg(version ORDER BY version) FROM schema_migrations").fetchone()
        (digest,) = conn.execute(
            "SELECT md5(pg_get_functiondef('talk_append'::regproc))").fetchone()
    return f"migrations {versions}, talk_append md5 {digest[:12]}"


def server_note(admin_url: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        names = ("server_version", "synchronous_commit", "fsync", "wal_sync_method",
                 "commit_delay", "shared_buffers", "max_connections")
        values = [conn.execute(f"SHOW {n}").fetchone()[0] for n in names]
    return ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True))


# --- report ------------------------------------------------------------------------------


def fmt_ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"


def aggregate(measures: list[Measure]) -> Measure:
    events = sum(m.events for m in measures)
    seconds = sum(m.seconds for m in measures)
    cpu = sum(m.client_cpu for m in measures)
    server = sum(m.server_cpu for m in measures)
    busy = sum(m.machine_busy * m.seconds for m in measures) / seconds if seconds else 0.0
    return Measure(events, seconds, cpu, server, busy)


def report(results: dict[tuple[str, int], list[Measure]], keys: list[str],
           concurrencies: list[int]) -> str:
    rate = {k: aggregate(v).rate for k, v in results.items()}
    out = []
    out.append("| concurrency | talk events/s | raw events/s | eventsourcing events/s "
               "| talk/raw | talk/eventsourcing |")
    out.append("|---:|---:|---:|---:|---:|---:|")
    for c in concurrencies:
        t, r, e = rate[("talk", c)], rate[("raw", c)], rate[("es", c)]
        out.append(f"| {c} | {t:,.0f} | {r:,.0f} | {e:,.0f} | {fmt_ratio(t, r)} "
                   f"| {fmt_ratio(t, e)} |")
    out.append("")
    if TARGET_CONCURRENCY in concurrencies:
        c = TARGET_CONCURRENCY
        tr = rate[("talk", c)] / rate[("raw", c)]
        te = rate[("talk", c)] / rate[("es", c)]
        out.append(f"targets at concurrency {c}: talk/raw >= {TARGET_TALK_RAW:.2f} -> "
                   f"{tr:.2f} ({'met' if tr >= TARGET_TALK_RAW else 'NOT met'}); "
                   f"talk/eventsourcing >= {TARGET_TALK_ES:.0f} -> {te:.2f} "
                   f"({'met' if te >= TARGET_TALK_ES else 'NOT met'})")
    else:
        out.append(f"targets (at concurrency {TARGET_CONCURRENCY}, not run): "
                   f"talk/raw >= {TARGET_TALK_RAW:.2f}, talk/eventsourcing >= {TARGET_TALK_ES:.0f}")

    extras = [k for k in keys if k not in MAIN_SYSTEMS]
    if extras:
        out.append("")
        out.append("| concurrency | " + " | ".join(f"{LABELS[k]} events/s" for k in extras)
                   + " | " + " | ".join(f"{LABELS[k]}/raw" for k in extras) + " |")
        out.append("|---:|" + "---:|" * (2 * len(extras)))
        for c in concurrencies:
            cells = [f"{rate[(k, c)]:,.0f}" for k in extras]
            ratios = [fmt_ratio(rate[(k, c)], rate[("raw", c)]) for k in extras]
            out.append(f"| {c} | " + " | ".join(cells + ratios) + " |")

    out.append("")
    out.append("Detail: events/s of each round; CPU/event of this process (client) and of the "
               "Postgres backends serving the pool (server; excludes walwriter etc.); machine = "
               "share of both cores busy while measuring, whoever used them:")
    for c in concurrencies:
        for k in keys:
            ms = results[(k, c)]
            agg = aggregate(ms)
            rounds = " ".join(f"{m.rate:,.0f}" for m in ms)
            cpu_us = agg.client_cpu / agg.events * 1e6 if agg.events else 0.0
            srv_us = agg.server_cpu / agg.events * 1e6 if agg.events else 0.0
            out.append(f"  c={c:<3} {LABELS[k]:<26} rounds [{rounds}]  CPU/event: client "
                       f"{cpu_us:,.0f} us, server {srv_us:,.0f} us;  machine {agg.machine_busy:.0%}")
        per_round = [m.rate / r.rate for m, r in zip(results[("talk", c)], results[("raw", c)],
                                                      strict=True) if r.rate]
        per_round_es = [m.rate / r.rate for m, r in zip(results[("talk", c)], results[("es", c)],
                                                         strict=True) if r.rate]
        out.append(f"  c={c:<3} per-round talk/raw {' '.join(f'{x:.2f}' for x in per_round)} "
                   f"(median {statistics.median(per_round):.2f}); talk/eventsourcing "
                   f"{' '.join(f'{x:.2f}' for x in per_round_es)} "
                   f"(median {statistics.median(per_round_es):.2f})")
    return "\n".join(out)


# --- main --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.append",
                                description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--seconds", type=float, default=5.0,
                   help="measured seconds per cell per round (default 5)")
    p.add_argument("--rounds", type=int, default=3,
                   help="rounds; each runs every system once per concurrency (default 3)")
    p.add_argument("--warmup", type=float, default=0.5,
                   help="unmeasured seconds at the start of each cell (default 0.5)")
    p.add_argument("--concurrency", default="1,8,32",
                   help="comma-separated concurrencies (default 1,8,32)")
    p.add_argument("--extra", default="",
                   help=f"investigation systems to add: {','.join(EXTRA_SYSTEMS)}")
    p.add_argument("--admin-url", default=os.environ.get(
        "TALK_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a superuser URL to create and drop the bench databases "
             "(env TALK_BENCH_ADMIN_URL)")
    p.add_argument("--keep", action="store_true", help="keep the bench databases")
    args = p.parse_args(argv)
    args.concurrencies = [int(x) for x in args.concurrency.split(",") if x.strip()]
    args.extras = [x.strip() for x in args.extra.split(",") if x.strip()]
    for x in args.extras:
        if x not in EXTRA_SYSTEMS:
            p.error(f"unknown --extra {x!r}; choose from {', '.join(EXTRA_SYSTEMS)}")
    if any(c < 1 for c in args.concurrencies) or args.rounds < 1 or args.seconds <= 0:
        p.error("concurrency, rounds and seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # As in production (TALK_LOG_LEVEL=INFO): the per-statement debug lines are dropped.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

    keys = list(MAIN_SYSTEMS) + args.extras
    prefix = f"talk_bench_{os.getpid()}"
    systems = [make_system(k, args.admin_url, prefix) for k in keys]
    note = server_note(args.admin_url)
    started = time.perf_counter()
    results: dict[tuple[str, int], list[Measure]] = defaultdict(list)

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {msg}", file=sys.stderr, flush=True)

    create_databases(args.admin_url, systems)
    try:
        for s in systems:
            s.setup()
        note_store = store_note(systems[0].url)
        progress(f"databases {prefix}_* ready; {args.rounds} rounds x {len(args.concurrencies)} "
                 f"concurrencies x {len(systems)} systems, {args.seconds:g}s each")
        for rnd in range(args.rounds):
            order = systems[rnd % len(systems):] + systems[:rnd % len(systems)]
            for c in args.concurrencies:
                for s in order:
                    m = s.cell(c, args.warmup, args.seconds)
                    results[(s.key, c)].append(m)
                    progress(f"round {rnd + 1} c={c:<3} {LABELS[s.key]:<26} {m.rate:9,.0f} events/s")
    finally:
        if args.keep:
            progress(f"kept databases {', '.join(s.dbname for s in systems)}")
        else:
            drop_databases(args.admin_url, systems)

    print(f"bench.append: one-event transactions (MessagePosted to a new stream), "
          f"{args.rounds} rounds x {args.seconds:g}s per cell (+{args.warmup:g}s warm-up), "
          f"systems interleaved per round in rotating order; os.cpu_count()={os.cpu_count()}")
    print(f"server: {note}")
    print(f"store: {note_store}")
    print(f"wall time {time.perf_counter() - started:.0f}s")
    print()
    print(report(results, keys, args.concurrencies))


if __name__ == "__main__":
    main()
