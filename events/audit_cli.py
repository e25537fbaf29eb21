"""``talk events export|state|verify|checkpoint``: the event history for auditors.

Output goes to stdout, diagnostics and summaries to stderr. Exit codes: 0 done (and, for
``verify``, clean), 1 ``verify`` found a problem, ``export`` met an event it cannot write (a
NULL where the schema forbids one) or ``state`` found no such talk then, 2 bad input (a
moment, a checkpoint file).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
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
from services.db import Database, make_pool
from services.settings import Settings

T = TypeVar("T")

EXIT_OK, EXIT_FOUND, EXIT_BAD_INPUT = 0, 1, 2
FINALITY_WAIT = 10.0  # seconds `state --at POSITION` waits for earlier transactions to finish


def _with_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    async def main() -> T:
        pool = make_pool(settings, min_size=1, max_size=1, name="talk-events")
        await pool.open(wait=True)
        try:
            return await work(Database(pool))
        finally:
            await pool.close()

    return asyncio.run(main())


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> int:
    print(f"talk events: {message}", file=sys.stderr)
    return code


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
    out = sys.stdout.buffer
    try:
        count = _with_database(settings, lambda db: export_events(db, out, filters, args.format))
    except BrokenPipeError:  # the reader went away (e.g. `| head`): not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the exit's flush does not fail again
        return EXIT_OK
    except BadExport as exc:
        return _fail(str(exc), EXIT_FOUND)
    print(f"exported {count} events", file=sys.stderr)
    return EXIT_OK


def run_state(settings: Settings, args: argparse.Namespace) -> int:
    from events.point_in_time import (
        BadMoment,
        NoSuchPosition,
        NotFinalYet,
        parse_moment,
        talk_state,
    )

    try:
        moment = parse_moment(args.at)
        state = _with_database(settings, lambda db: talk_state(db, args.chat_id, moment,
                                                                wait=FINALITY_WAIT))
    except (BadMoment, NoSuchPosition, NotFinalYet) as exc:
        return _fail(str(exc))
    if state is None:
        return _fail(f"talk {args.chat_id} did not exist at {args.at}", EXIT_FOUND)
    sys.stdout.buffer.write(orjson.dumps(state, option=orjson.OPT_INDENT_2) + b"\n")
    sys.stdout.flush()
    return EXIT_OK


def _open(path: str, mode: str, stack: ExitStack, std: IO[str]) -> IO[str]:
    return std if path == "-" else stack.enter_context(open(path, mode, encoding="utf-8"))


def run_verify(settings: Settings, args: argparse.Namespace) -> int:
    report = VerifyReport()
    with ExitStack() as stack:
        try:
            heads = (parse_checkpoint(_open(args.against, "r", stack, sys.stdin))
                     if args.against else None)
        except OSError as exc:
            return _fail(f"cannot read the checkpoint {args.against}: {exc}")

        async def walk(db: Database) -> None:
            async for finding in run_verify_chain(db, report, heads):
                print(finding, flush=True)

        try:
            _with_database(settings, walk)
        except (BadCheckpoint, UnicodeDecodeError) as exc:
            return _fail(f"{args.against} is not a checkpoint: {exc}")
    against = f", against {report.checkpoint_heads} checkpointed heads" if args.against else ""
    verdict = "clean" if not report.findings else f"{report.findings} problem(s) found"
    print(f"verified {report.events} events in {report.streams} streams{against}: {verdict}",
          file=sys.stderr)
    return EXIT_FOUND if report.findings else EXIT_OK


def run_checkpoint(settings: Settings, args: argparse.Namespace) -> int:
    with ExitStack() as stack:
        try:
            out = _open(args.output, "w", stack, sys.stdout)
        except OSError as exc:
            return _fail(f"cannot write {args.output}: {exc}")

        async def write(db: Database) -> int:
            count = 0
            async for head in stream_heads(db):
                out.write(head.to_json() + "\n")
                count += 1
            return count

        count = _with_database(settings, write)
    print(f"wrote the heads of {count} streams", file=sys.stderr)
    return EXIT_OK
