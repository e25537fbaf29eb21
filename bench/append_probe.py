"""Where an append's time goes: one connection, one call at a time (no contention).

    python -m bench.append_probe [--calls 2000] [--repeat 3] [--pgbench 1,8,32]
                                 [--pgbench-seconds 4] [--admin-url URL]

For each variant, on its own scratch database (dropped at the end), ``--calls`` one-event
appends of the same ``MessagePosted`` as ``bench.append``, reporting per call: median and
p90 wall latency, CPU of this process (client: building and adapting the parameters,
psycopg, the pool) and CPU of the Postgres backend serving the connection (server). CPU per
call is what bounds throughput on a 2-core machine once both cores are busy, and it is much
less disturbed by noisy neighbours than events/s.

Variants:
``talk``                  ``PostgresEventStore.append`` as shipped (``talk_append``, one jsonb)
``talk sync_commit=off``  the same, ``SET synchronous_commit = off`` (no WAL flush wait)
``talk before 0008``      ``ArrayFormEventStore`` on a schema that stops at migration 0007
                          (``talk_append_events``, ten binary arrays)
``raw``                   single-row autocommit INSERT (the ceiling of ``bench.append``)
``raw + pg_notify``       the same plus ``pg_notify`` in the same statement
``raw sync_commit=off``
and, without any round trip, ``client only``: building the parameters plus psycopg's
adaptation of them (no I/O), for ``talk``, ``talk before 0008`` and ``raw``.

``--pgbench 1,8,32`` adds the server side alone: the same appends as SQL scripts driven by
``pgbench`` (a C client, prepared statements) at those concurrencies, interleaved round by
round, so the Python client is out of the picture: ``talk``, ``talk before 0008``, ``raw``
and ``raw + pg_notify``.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable

import psycopg
import structlog
from psycopg.adapt import Transformer

from bench.append import (
    RAW_INSERT,
    RAW_INSERT_NOTIFY,
    Raw,
    TalkStore,
    _backends_cpu,
    create_databases,
    drop_databases,
    new_message,
)
from events.append_statements import array_form_statement, statement_for
from events.envelope import NewEvent
from events.postgres_store import ArrayFormEventStore, PostgresEventStore
from events.store import StreamAppend
from services.db import Database, make_pool
from services.settings import load_settings

try:  # psycopg's query adaptation, to time the client side alone
    from psycopg._queries import PostgresQuery
except ImportError:  # pragma: no cover - private API moved
    PostgresQuery = None  # type: ignore[assignment,misc]

from psycopg.types.json import Jsonb


async def measure(conn: psycopg.AsyncConnection, call: Callable[[], Awaitable[object]],
                  calls: int) -> tuple[float, float, float, float]:
    """(median, p90, client CPU, server CPU) per call, in microseconds."""
    for _ in range(50):
        await call()  # warm up: psycopg prepares after 5, plpgsql caches its plans
    pid = conn.info.backend_pid
    lat = []
    cpu0, srv0 = time.process_time(), _backends_cpu([pid])
    for _ in range(calls):
        t = time.perf_counter()
        await call()
        lat.append(time.perf_counter() - t)
    cpu, srv = time.process_time() - cpu0, _backends_cpu([pid]) - srv0
    lat.sort()
    return (lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.9)] * 1e6, cpu / calls * 1e6,
            srv / calls * 1e6)


def talk_args() -> tuple[list[StreamAppend], object]:
    _, stream, event, metadata = new_message()
    return [StreamAppend(stream, 0, [NewEvent(stream, event)])], metadata


def raw_params() -> tuple:
    message_id, stream, event, metadata = new_message()
    return (message_id, stream, 1, event.event_type, Jsonb(event.model_dump(mode="json")),
            Jsonb(metadata.to_json()))


async def probe_talk(system: TalkStore, label: str, calls: int, *,
                     sync_commit: str = "on") -> tuple[str, tuple]:
    pool = make_pool(load_settings(database_url=system.url), min_size=1, max_size=1,
                     name="probe")
    await pool.open(wait=True)
    try:
        db = Database(pool)
        store = (ArrayFormEventStore if system.before_0008 else PostgresEventStore)(db)
        async with pool.connection() as conn:
            await conn.execute(f"SET synchronous_commit = {sync_commit}")
            pid_conn = conn

        async def call() -> None:
            await store.append(*talk_args())

        return label, await measure(pid_conn, call, calls)
    finally:
        await pool.close()


async def probe_raw(system: Raw, label: str, calls: int, *, statement: str = RAW_INSERT,
                    sync_commit: str = "on") -> tuple[str, tuple]:
    async with await psycopg.AsyncConnection.connect(system.url, autocommit=True) as conn:
        await conn.execute(f"SET synchronous_commit = {sync_commit}")

        async def call() -> None:
            await conn.execute(statement, raw_params())

        return label, await measure(conn, call, calls)


def client_only(conn: psycopg.Connection, calls: int) -> list[tuple[str, float]]:
    """Microseconds of CPU per call to build the parameters and adapt them (no I/O)."""
    if PostgresQuery is None:
        return []

    def adapt(query: str, params: tuple) -> None:
        PostgresQuery(Transformer(conn)).convert(query, params)

    cases: list[tuple[str, Callable[[], object]]] = [
        ("talk: build the statement's parameters", lambda: statement_for(*talk_args())),
        ("talk: build + adapt", lambda: adapt(*statement_for(*talk_args()))),
        ("talk before 0008: build the arrays", lambda: array_form_statement(*talk_args())),
        ("talk before 0008: build + adapt (binary)",
         lambda: adapt(*array_form_statement(*talk_args()))),
        ("raw: build params", raw_params),
        ("raw: build + adapt", lambda: adapt(RAW_INSERT, raw_params())),
    ]
    out = []
    for label, fn in cases:
        for _ in range(50):
            fn()
        t0 = time.process_time()
        for _ in range(calls):
            fn()
        out.append((label, (time.process_time() - t0) / calls * 1e6))
    return out


async def probe_all(talk: TalkStore, before: TalkStore, raw: Raw,
                    n: int) -> list[tuple[str, tuple]]:
    return [
        await probe_talk(talk, "talk", n),
        await probe_raw(raw, "raw", n),
        await probe_talk(talk, "talk sync_commit=off", n, sync_commit="off"),
        await probe_raw(raw, "raw sync_commit=off", n, sync_commit="off"),
        await probe_talk(before, "talk before 0008", n),
        await probe_raw(raw, "raw + pg_notify", n, statement=RAW_INSERT_NOTIFY),
    ]


def _literal(value: object) -> str:
    # ": " separators: pgbench would read a compact ':name' as one of its variables.
    return "'" + json.dumps(value).replace("'", "''") + "'"


def pgbench_scripts() -> dict[str, tuple[str, str]]:
    """Variant label -> (system key, pgbench script) appending the same event as the rest."""
    _, _, event, metadata = new_message()
    data, meta = _literal(event.model_dump(mode="json")), _literal(metadata.to_json())

    talk = ("SELECT p.* FROM (SELECT 'message-' || gen_random_uuid() AS s) x, LATERAL "
            "talk_append(jsonb_build_object('streams', jsonb_build_array(jsonb_build_array("
            "x.s, 0, jsonb_build_array(jsonb_build_array(gen_random_uuid(), 'MessagePosted', 1, "
            f"{data}::jsonb)))), 'metadata', {meta}::jsonb)) p;\n")
    before = ("SELECT p.* FROM (SELECT 'message-' || gen_random_uuid() AS s) x, LATERAL "
              "talk_append_events(ARRAY[x.s], ARRAY[0::bigint], ARRAY[1], "
              "ARRAY[gen_random_uuid()], ARRAY[x.s], ARRAY[1::bigint], ARRAY['MessagePosted'], "
              f"ARRAY[1], ARRAY[{data}::jsonb], {meta}::jsonb) p;\n")
    raw = ("INSERT INTO raw_events (id, stream, version, type, data, metadata) VALUES "
           f"(gen_random_uuid(), 'message-' || gen_random_uuid(), 1, 'MessagePosted', {data}, "
           f"{meta})")
    return {
        "talk": ("talk", talk),
        "talk before 0008": ("talk-0007", before),
        "raw": ("raw", raw + ";\n"),
        "raw + pg_notify": ("raw", f"WITH i AS ({raw} RETURNING 1) "
                                   "SELECT pg_notify('talk_events', '') FROM i;\n"),
    }


def find_pgbench() -> str | None:
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pgbench"))
    return candidates[-1] if candidates else None


def run_pgbench(pgbench: str, url: str, script: str, clients: int, seconds: float) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            [pgbench, "-n", "-M", "prepared", "-f", f.name, "-c", str(clients),
             "-j", str(min(clients, 2)), "-T", str(max(1, round(seconds))), url],
            capture_output=True, text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    m = re.search(r"^tps = ([\d.]+)", out, re.M)
    if not m:
        raise RuntimeError(f"no tps in pgbench output: {out}")
    return float(m.group(1))


def pgbench_section(args: argparse.Namespace, by_key: dict[str, object]) -> list[str]:
    pgbench = find_pgbench()
    if pgbench is None:
        return ["(pgbench not found: server-side section skipped)"]
    scripts = pgbench_scripts()
    labels = list(scripts)
    tps: dict[tuple[str, int], list[float]] = {}
    for rnd in range(args.pgbench_rounds):
        order = labels[rnd % len(labels):] + labels[:rnd % len(labels)]
        for c in args.pgbench:
            for label in order:
                key, script = scripts[label]
                tps.setdefault((label, c), []).append(
                    run_pgbench(pgbench, by_key[key].url, script, c, args.pgbench_seconds))
    out = [f"Server side alone (pgbench, C client, -M prepared, {args.pgbench_rounds} rounds x "
           f"{args.pgbench_seconds:g}s per cell, interleaved): transactions/s, mean of rounds "
           "[each round]", "",
           "| variant | " + " | ".join(f"c={c}" for c in args.pgbench) + " |",
           "|---|" + "---:|" * len(args.pgbench)]
    for label in labels:
        cells = []
        for c in args.pgbench:
            xs = tps[(label, c)]
            cells.append(f"{sum(xs) / len(xs):,.0f} [{' '.join(f'{x:,.0f}' for x in xs)}]")
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    return out


def run(args: argparse.Namespace) -> None:
    prefix = f"talk_bench_probe_{os.getpid()}"
    talk = TalkStore("talk", args.admin_url, prefix)
    before = TalkStore("talk-0007", args.admin_url, prefix, before_0008=True)
    raw = Raw("raw", args.admin_url, prefix)
    systems = [talk, before, raw]
    n = args.calls
    create_databases(args.admin_url, systems)
    try:
        for s in systems:
            s.setup()
        rows = []
        for _ in range(args.repeat):
            rows += asyncio.run(probe_all(talk, before, raw, n))
        with psycopg.connect(talk.url) as conn:
            client = client_only(conn, n)
        server = pgbench_section(args, {"talk": talk, "talk-0007": before, "raw": raw}) \
            if args.pgbench else []
    finally:
        drop_databases(args.admin_url, systems)

    print(f"bench.append_probe: {n} serial one-event appends per variant, one connection, "
          f"x{args.repeat} (medians of the repeats); microseconds per call")
    print()
    print("| variant | median latency | p90 latency | client CPU | server CPU |")
    print("|---|---:|---:|---:|---:|")
    by_label: dict[str, list[tuple]] = {}
    for label, m in rows:
        by_label.setdefault(label, []).append(m)
    for label, ms in by_label.items():
        cols = [sorted(m[i] for m in ms)[len(ms) // 2] for i in range(4)]
        print(f"| {label} | " + " | ".join(f"{c:,.0f}" for c in cols) + " |")
    if client:
        print()
        print("| client only, no I/O | CPU per call |")
        print("|---|---:|")
        for label, us in client:
            print(f"| {label} | {us:,.0f} |")
    if server:
        print()
        print("\n".join(server))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.append_probe",
                                description=" ".join(__doc__.split("\n\n")[0].split()))
    p.add_argument("--calls", type=int, default=2000)
    p.add_argument("--repeat", type=int, default=3,
                   help="repeat the whole set, report medians (default 3)")
    p.add_argument("--admin-url", default=os.environ.get(
        "TALK_BENCH_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    p.add_argument("--pgbench", default="",
                   help="concurrencies for the server-side pgbench section, e.g. 1,8,32")
    p.add_argument("--pgbench-seconds", type=float, default=4.0)
    p.add_argument("--pgbench-rounds", type=int, default=2)
    args = p.parse_args(argv)
    args.pgbench = [int(x) for x in args.pgbench.split(",") if x.strip()]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    run(args)


if __name__ == "__main__":
    main()
