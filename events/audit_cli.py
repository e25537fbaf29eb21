"""``talk events export|state|verify|checkpoint``: the event history for auditors.

Output goes to stdout; progress (a bar on a terminal, log lines otherwise), diagnostics and
summaries go to stderr. Exit codes (:mod:`services.cli_support`): 0 done (and, for
``verify``, clean); 1 findings: ``verify`` found a problem, ``export`` met an event it cannot
write (a NULL where the schema forbids one) or ``state`` found no such talk then; 2 usage: a
bad moment, an unreadable checkpoint; 3 unavailable: Postgres cannot be reached, or (``state
--at``) a transaction before that moment is still in flight.

``checkpoint --output DIR`` writes a new ``checkpoint-<UTC time>.jsonl`` there (complete or
not at all: it is renamed into place when written), and ``verify --against DIR`` uses the
newest one: what the scheduled Kubernetes jobs run (deploy/k8s/ops).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TypeVar

import orjson

from events.export import BadExport, ExportFilters, export_events
from events.verify import (
    BadCheckpoint,
    VerifyReport,
    parse_checkpoint,
    run_verify_chain,
    stream_heads,
)
from services.cli_support import (
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    Progress,
    UsageError,
    check_reachable,
    fail,
    run_tool,
)
from services.db import Database, make_pool
from services.settings import Settings

T = TypeVar("T")

FINALITY_WAIT = 10.0  # seconds `state --at POSITION` waits for earlier transactions to finish
CHECKPOINT_GLOB = "checkpoint-*.jsonl"


def _with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        await check_reachable(settings.require_database_url(), settings.db_connect_timeout)
        pool = make_pool(settings, min_size=1, max_size=1, name="talk-events")
        await pool.open(wait=True, timeout=settings.db_connect_timeout * 2)
        try:
            return await work(Database(pool))
        finally:
            await pool.close()

    return asyncio.run(main())


def _fail(message: str, code: int = EXIT_USAGE) -> int:
    return fail("events", message, code)


async def _estimated_rows(db: Database, table: str) -> int:
    """The planner's row estimate of ``table`` (no scan): the total a progress bar starts
    from; it is raised if more rows come."""
    async with db.statement("estimate_rows") as conn:
        cur = await conn.execute(
            "SELECT greatest(reltuples, 0)::bigint AS n FROM pg_class"
            " WHERE oid = to_regclass(%s)", (table,))
        row = await cur.fetchone()
    return int(row["n"]) if row else 0


def run_export(settings: Settings, args: argparse.Namespace) -> int:
    since = until = None
    if args.since or args.until:
        # Imported when needed: the point-in-time module brings the domain, the catalogue and
        # the query API's folds along (~50 ms), which an export without bounds skips.
        from events.point_in_time import BadMoment, parse_moment

        try:
            since = parse_moment(args.since) if args.since else None
            until = parse_moment(args.until) if args.until else None
        except BadMoment as exc:
            return _fail(str(exc))
    filters = ExportFilters(customer_id=args.customer_id, chat_id=args.chat_id,
                            since=since, until=until)
    whole_store = not (args.customer_id or args.chat_id or since or until)
    out = sys.stdout.buffer

    async def export(db: Database) -> int:
        bar = Progress("export", await _estimated_rows(db, "events") if whole_store else 0)
        count = await export_events(db, out, filters, args.format, progress=bar)
        bar.finish()
        return count

    def work() -> int:  # a reader that goes away (`| head`) is not an error: run_tool says 0
        try:
            count = _with_database(settings, export)
        except BadExport as exc:
            return _fail(str(exc), EXIT_FINDINGS)
        print(f"exported {count} events", file=sys.stderr)
        return EXIT_OK

    return run_tool("events export", work)


def run_state(settings: Settings, args: argparse.Namespace) -> int:
    from events.point_in_time import (
        BadMoment,
        NoSuchPosition,
        NotFinalYet,
        parse_moment,
        talk_state,
    )

    def work() -> int:
        try:
            moment = parse_moment(args.at)
            state = _with_database(settings, lambda db: talk_state(db, args.chat_id, moment,
                                                                    wait=FINALITY_WAIT))
        except (BadMoment, NoSuchPosition) as exc:
            return _fail(str(exc))
        except NotFinalYet as exc:
            return _fail(str(exc), EXIT_UNAVAILABLE)
        if state is None:
            return _fail(f"talk {args.chat_id} did not exist at {args.at}", EXIT_FINDINGS)
        sys.stdout.buffer.write(orjson.dumps(state, option=orjson.OPT_INDENT_2) + b"\n")
        sys.stdout.flush()
        return EXIT_OK

    return run_tool("events state", work)


def _open(path: str, mode: str, stack: ExitStack, std: IO[str]) -> IO[str]:
    return std if path == "-" else stack.enter_context(open(path, mode, encoding="utf-8"))


def newest_checkpoint(directory: Path) -> Path:
    """The newest ``checkpoint-<UTC time>.jsonl`` of ``directory`` (the names sort by time)."""
    found = sorted(directory.glob(CHECKPOINT_GLOB))
    if not found:
        raise UsageError(f"no {CHECKPOINT_GLOB} in {directory}")
    return found[-1]


def run_verify(settings: Settings, args: argparse.Namespace) -> int:
    def work() -> int:
        report = VerifyReport()
        against = args.against
        if against and against != "-" and Path(against).is_dir():
            against = str(newest_checkpoint(Path(against)))
            print(f"verifying against {against}", file=sys.stderr)
        with ExitStack() as stack:
            try:
                heads = (parse_checkpoint(_open(against, "r", stack, sys.stdin))
                         if against else None)
            except OSError as exc:
                return _fail(f"cannot read the checkpoint {against}: {exc}")

            async def walk(db: Database) -> None:
                bar = Progress("verify", await _estimated_rows(db, "events"))
                async for finding in run_verify_chain(db, report, heads, progress=bar):
                    print(finding, flush=True)
                bar.finish()

            try:
                _with_database(settings, walk)
            except (BadCheckpoint, UnicodeDecodeError) as exc:
                return _fail(f"{against} is not a checkpoint: {exc}")
        checked = f", against {report.checkpoint_heads} checkpointed heads" if against else ""
        verdict = "clean" if not report.findings else f"{report.findings} problem(s) found"
        print(f"verified {report.events} events in {report.streams} streams{checked}: {verdict}",
              file=sys.stderr)
        return EXIT_FINDINGS if report.findings else EXIT_OK

    return run_tool("events verify", work)


def _checkpoint_target(output: str) -> tuple[str, Path | None]:
    """Where to write: ``-``, a file, or (for a directory) a new partial file and the name it
    gets once complete."""
    if output != "-" and Path(output).is_dir():
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        final = Path(output) / f"checkpoint-{stamp}.jsonl"
        return str(final.with_name(final.name + ".partial")), final
    return output, None


def run_checkpoint(settings: Settings, args: argparse.Namespace) -> int:
    def work() -> int:
        path, final = _checkpoint_target(args.output)
        with ExitStack() as stack:
            try:
                out = _open(path, "w", stack, sys.stdout)
            except OSError as exc:
                return _fail(f"cannot write {path}: {exc}")

            async def write(db: Database) -> int:
                bar = Progress("checkpoint", await _estimated_rows(db, "streams"),
                               unit="streams")
                count = 0
                async for head in stream_heads(db):
                    out.write(head.to_json() + "\n")
                    count += 1
                    bar(1)
                bar.finish()
                return count

            try:
                count = _with_database(settings, write)
            except BaseException:
                if final is not None:
                    Path(path).unlink(missing_ok=True)
                raise
            if final is not None:
                out.flush()
                os.fsync(out.fileno())
        if final is not None:
            os.replace(path, final)  # complete, or not there at all
        where = f" to {final}" if final is not None else ""
        print(f"wrote the heads of {count} streams{where}", file=sys.stderr)
        return EXIT_OK

    return run_tool("events checkpoint", work)
