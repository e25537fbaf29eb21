"""How long ``talk up`` takes to be ready, and to stop (issue 5): the embedded PostgreSQL on a
fresh data directory (initdb) and on an existing one, side by side with ``talk up`` on the
local PostgreSQL (no embedded server: the baseline) and with the bare import of the code
(the floor any start pays).

    python -m bench.up_startup [--rounds 3] [--admin-url postgresql://postgres@127.0.0.1:5432/postgres]

Each figure is the wall time from starting the process to its ``ready`` line (and, for the
stop, from SIGINT to the process's exit, the embedded server included). The cells alternate
within each round, so each system sees the same machine load. The baseline runs on a
database of its own (``talk_bench_up_<pid>``), dropped at the end; the data directories
are temporary. Targets (printed, not asserted): fresh < 60 s, existing < 10 s.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

READY = re.compile(r"^ready in ([0-9.]+) s: ")


def _env(**talk: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TALK_")}
    env.update({f"TALK_{k.upper()}": v for k, v in talk.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def run_up(cwd: Path, env: dict[str, str]) -> tuple[float, float, float]:
    """(seconds to the ready line, of which inside ``talk up``, seconds to stop)."""
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "services.cli", "up", "--port", "0"],
                            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    assert proc.stdout is not None
    inside = None
    for line in proc.stdout:
        if m := READY.match(line):
            inside = float(m.group(1))
            break
    ready = time.monotonic() - started
    if inside is None:
        proc.kill()
        raise RuntimeError(f"talk up ended without a ready line (exit {proc.wait()})")
    stopping = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.stdout.read()
    code = proc.wait(60)
    if code != 0:
        raise RuntimeError(f"talk up exited {code}")
    return ready, inside, time.monotonic() - stopping


def import_floor() -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import services.up"], check=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    dbname = f"talk_bench_up_{os.getpid()}"
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{dbname}"')
    info = psycopg.conninfo.conninfo_to_dict(args.admin_url)
    info["dbname"] = dbname
    external = _env(database_url=psycopg.conninfo.make_conninfo(**info))
    work = Path(tempfile.mkdtemp(prefix="talk-bench-up-"))
    cells: dict[str, list[tuple[float, float, float]]] = {
        "embedded, fresh data dir": [], "embedded, existing data dir": [],
        "external Postgres (baseline)": []}
    floors: list[float] = []
    try:
        run_up(work, external)  # migrate the baseline's database outside the measurements
        for r in range(args.rounds):
            fresh = work / f"round{r}"
            fresh.mkdir()
            cells["embedded, fresh data dir"].append(run_up(fresh, _env()))
            cells["embedded, existing data dir"].append(run_up(fresh, _env()))
            cells["external Postgres (baseline)"].append(run_up(work, external))
            floors.append(import_floor())
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')

    floor = statistics.median(floors)
    base = statistics.median(x[0] for x in cells["external Postgres (baseline)"])
    print(f"talk up start and stop, median of {args.rounds} (min-max), load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'system':32} {'to ready s':>16} {'inside talk up s':>17} {'stop s':>13} "
          f"{'vs baseline':>11}")
    for name, runs in cells.items():
        ready = [x[0] for x in runs]
        inside = [x[1] for x in runs]
        stop = [x[2] for x in runs]
        print(f"{name:32} {_fmt(ready):>16} {_fmt(inside):>17} {_fmt(stop):>13} "
              f"{statistics.median(ready) / base:>10.2f}x")
    print(f"{'import services.up (floor)':32} {_fmt(floors):>16}")
    print(f"targets: fresh < 60 s, existing < 10 s; floor share of the existing start: "
          f"{floor / statistics.median(x[0] for x in cells['embedded, existing data dir']):.0%}")


def _fmt(values: list[float]) -> str:
    return f"{statistics.median(values):.1f} ({min(values):.1f}-{max(values):.1f})"


if __name__ == "__main__":
    main()
