"""``talk projections verify``: rebuild the read tables into a scratch schema and compare
them with the live ones, row by row.

Both must be compared at the same place in the history while the live projector goes on.
The scratch copy is replayed up to near the live checkpoints (``--workers K``: K slices of
the talks side by side); then one ``REPEATABLE READ`` transaction reads the live
checkpoints, replays the scratch copy up to exactly them (with the projection in
partitions, each talk's events up to its partition's checkpoint) and compares. Its
snapshot shows the live tables exactly as they were at those checkpoints (the projector
commits each batch's rows with its checkpoint), so the projector is never held up, and the
comparison is exact. A difference is reported as table, id,
column, live value and rebuilt value; rows only on one side are reported as such.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
import psycopg

from events.envelope import Checkpoint
from events.upcasting import UPCASTERS, Upcasters
from projector.read_schema import TABLES, Table
from projector.rebuild import (
    SCRATCH_SCHEMA,
    VERIFY_CHECKPOINT,
    ProgressFactory,
    catch_up_exactly,
    create_copy,
    drop_schema,
    remaining,
    replay_lock,
    run_with_pool,
    side_by_side,
)
from projector.replay import CHUNK_SIZE, Bound, live_layout
from projector.replay_workers import replay_side_by_side
from services.cli_support import EXIT_FINDINGS, EXIT_OK, Progress
from services.db import Database
from services.settings import Settings

SHOWN_PER_TABLE = 100


@dataclass(frozen=True)
class Difference:
    table: str
    id: str
    column: str | None  # None: the row is on one side only
    live: Any = None
    rebuilt: Any = None

    def __str__(self) -> str:
        if self.column is None:
            side = "only in the live table" if self.rebuilt is None else "missing from the live table"
            return f"{self.table} {self.id}: {side}"
        return (f"{self.table} {self.id} {self.column}: live {_show(self.live)}"
                f" != rebuilt {_show(self.rebuilt)}")


def _show(value: Any) -> str:
    return orjson.dumps(value).decode() if value is not None else "null"


@dataclass
class VerifyReport:
    checkpoint: Checkpoint  # the furthest of the live checkpoints compared at
    events: int
    seconds: float
    checkpoints: list[Checkpoint] = field(default_factory=list)  # one per partition
    rows: dict[str, int] = field(default_factory=dict)  # rows of each rebuilt table
    differences: list[Difference] = field(default_factory=list)  # the first ones per table
    different_rows: dict[str, int] = field(default_factory=dict)  # how many rows differ

    @property
    def identical(self) -> bool:
        return not any(self.different_rows.values())


async def verify_read_model(db: Database, *, progress: ProgressFactory = Progress,
                            chunk_size: int = CHUNK_SIZE, upcasters: Upcasters = UPCASTERS,
                            shown_per_table: int = SHOWN_PER_TABLE, workers: int = 1,
                            processes: bool = True) -> VerifyReport:
    started = time.monotonic()
    async with replay_lock(db):
        async with db.statement("verify_inspect") as conn:
            bound = Bound("live", await live_layout(conn))
        replays = side_by_side(db, SCRATCH_SCHEMA, VERIFY_CHECKPOINT, bound, workers,
                               chunk_size=chunk_size, upcasters=upcasters)
        await drop_schema(db, SCRATCH_SCHEMA)
        await create_copy(db, replays[0])
        try:
            bar = progress("verify", await remaining(replays))
            await replay_side_by_side(replays, bar, processes=processes)
            async with db.transaction("verify_compare") as conn:
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                live = await bound.read(conn)  # the snapshot starts here
                await catch_up_exactly(conn, replays, live, bar)
                bar.finish()
                report = VerifyReport(max(live), bar.done, 0.0, live)
                for table in TABLES:
                    await _compare(conn, table, report, shown_per_table)
        finally:
            async with db.statement("verify_clear_checkpoint") as conn:
                await conn.execute("DELETE FROM projector_checkpoints WHERE name = %s",
                                   (VERIFY_CHECKPOINT,))
            await drop_schema(db, SCRATCH_SCHEMA)
    report.seconds = time.monotonic() - started
    return report


async def _columns(conn: psycopg.AsyncConnection, relation: str) -> list[str]:
    cur = await conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0"
        " AND NOT attisdropped ORDER BY attnum", (relation,))
    return [row["attname"] for row in await cur.fetchall()]


async def _compare(conn: psycopg.AsyncConnection, table: Table, report: VerifyReport,
                   shown: int) -> None:
    live_columns = await _columns(conn, table.name)
    rebuilt_columns = await _columns(conn, f"{SCRATCH_SCHEMA}.{table.name}")
    common = [c for c in rebuilt_columns if c in live_columns]
    for column in sorted(set(live_columns) ^ set(rebuilt_columns)):
        report.differences.append(Difference(
            table.name, "(every row)", column, "present" if column in live_columns else None,
            "present" if column in rebuilt_columns else None))
        report.different_rows[table.name] = report.different_rows.get(table.name, 0) + 1

    cur = await conn.execute(f"SELECT count(*) AS n FROM {SCRATCH_SCHEMA}.{table.name}")
    report.rows[table.name] = (await cur.fetchone())["n"]
    live_row = ", ".join(f"l.{c}" for c in common)
    rebuilt_row = ", ".join(f"r.{c}" for c in common)
    cur = await conn.execute(
        f"SELECT coalesce(l.id, r.id)::text AS id, to_jsonb(l) AS live, to_jsonb(r) AS rebuilt,"
        f"       count(*) OVER () AS total"
        f"  FROM {table.name} l FULL JOIN {SCRATCH_SCHEMA}.{table.name} r ON r.id = l.id"
        f" WHERE l.id IS NULL OR r.id IS NULL OR ({live_row}) IS DISTINCT FROM ({rebuilt_row})"
        f" ORDER BY 1 LIMIT %s", (shown,))
    rows = await cur.fetchall()
    if rows:
        report.different_rows[table.name] = (report.different_rows.get(table.name, 0)
                                             + rows[0]["total"])
    for row in rows:
        live, rebuilt = row["live"], row["rebuilt"]
        if live is None or rebuilt is None:
            report.differences.append(Difference(table.name, row["id"], None, live, rebuilt))
            continue
        for column in common:
            if live[column] != rebuilt[column]:
                report.differences.append(
                    Difference(table.name, row["id"], column, live[column], rebuilt[column]))


def print_report(report: VerifyReport) -> None:
    for difference in report.differences:
        print(difference, flush=False)
    for table, n in report.different_rows.items():
        shown = len({d.id for d in report.differences if d.table == table})
        if n > shown:
            print(f"{table}: {n:,} rows differ ({shown:,} shown)")
    rows = ", ".join(f"{table} {n:,} rows" for table, n in report.rows.items())
    verdict = ("identical" if report.identical else
               f"DIFFERENT ({sum(report.different_rows.values()):,} rows)")
    place = (f"checkpoint {report.checkpoint}" if len(report.checkpoints) <= 1 else
             f"the checkpoints of {len(report.checkpoints)} partitions"
             f" ({min(report.checkpoints)} to {max(report.checkpoints)})")
    print(f"verify: live read tables vs a rebuild from {report.events:,} events at {place}"
          f" ({rows}): {verdict}", flush=True)


def run_verify(settings: Settings, args: argparse.Namespace) -> int:
    async def verify(db: Database) -> int:
        report = await verify_read_model(db, workers=args.workers)
        print_report(report)
        return EXIT_OK if report.identical else EXIT_FINDINGS

    return run_with_pool(settings, "verify", verify, args.workers)
