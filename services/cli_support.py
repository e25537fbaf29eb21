"""What every ``talk`` subcommand shares: the exit codes, the argument types, the progress
printer, and the translation of expected failures into an exit code and one line on stderr.

The CLI lives in four places (``services/cli.py`` builds the parser and runs the services;
``events/audit_cli.py``, ``projector/rebuild.py`` and ``projector/verify.py`` run the tools);
all of them answer with these codes:

====  ============  =========================================================================
code  name          meaning
====  ============  =========================================================================
0     EXIT_OK       done (and, for a check, nothing found)
1     EXIT_FINDINGS a check found something: tampering, a difference, pending migrations
2     EXIT_USAGE    bad arguments, an unreadable input file, settings that refuse to start
3     EXIT_UNAVAIL  a dependency is down (Postgres, RabbitMQ) or another run holds the lock
====  ============  =========================================================================

Output goes to stdout; progress, diagnostics and summaries go to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from typing import TextIO
from uuid import UUID

import psycopg
import structlog
from psycopg_pool import PoolTimeout

log = structlog.get_logger("talk.cli")

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

# What "a dependency is down" looks like to a tool: Postgres refusing or dropping the
# connection, the pool giving up waiting for one, a socket error underneath.
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError, PoolTimeout, ConnectionError, TimeoutError)


class Unavailable(Exception):
    """Raised by a tool when what it needs is not available now (e.g. another run holds the
    lock); answered with :data:`EXIT_UNAVAILABLE`."""


class UsageError(Exception):
    """Raised by a tool for bad input it found after parsing (a moment, a file); answered
    with :data:`EXIT_USAGE`."""


# --- arguments ---------------------------------------------------------------------------------


def uuid_arg(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {text!r}") from None


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


EXIT_CODES_EPILOG = ("exit codes: 0 ok, 1 findings (a check found something), 2 usage, "
                     "3 unavailable (Postgres or RabbitMQ down, or another run holds the lock)")


def add_command(sub: argparse._SubParsersAction, name: str, summary: str,
                description: str | None = None) -> argparse.ArgumentParser:
    """A subcommand with a one-line ``summary`` (shown in its parent's list) and a
    ``description`` (shown by its own ``--help``); both are required of every subcommand."""
    return sub.add_parser(name, help=summary, epilog=EXIT_CODES_EPILOG,
                          description=description or summary[:1].upper() + summary[1:] + ".")


# --- running a tool -----------------------------------------------------------------------------


def fail(command: str, message: str, code: int = EXIT_USAGE) -> int:
    """One line on stderr, and ``code``."""
    print(f"talk {command}: {message}", file=sys.stderr, flush=True)
    return code


def run_tool(command: str, work: Callable[[], int]) -> int:
    """Run ``work`` and map the expected failures to exit codes, each with one line on stderr
    and no traceback: a dependency down -> 3, :class:`UsageError` -> 2; stdout closed by its
    reader -> 0."""
    try:
        return int(work() or 0)
    except BrokenPipeError:  # the reader of stdout went away (e.g. `| head`): not an error
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that the exit's flush does not fail again
        return EXIT_OK
    except Unavailable as exc:
        return fail(command, str(exc), EXIT_UNAVAILABLE)
    except UsageError as exc:
        return fail(command, str(exc), EXIT_USAGE)
    except UNAVAILABLE_ERRORS as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return fail(command, f"unavailable: {detail}", EXIT_UNAVAILABLE)


async def check_reachable(database_url: str, connect_timeout: float) -> None:
    """One connection, opened and closed: a tool calls this before it opens its pool, so that
    Postgres being down is reported at once and with its reason (a pool would retry until its
    timeout and say only that it gave up)."""
    conn = await psycopg.AsyncConnection.connect(database_url, connect_timeout=connect_timeout)
    await conn.close()


# --- progress ----------------------------------------------------------------------------------

BAR_WIDTH = 28
TERMINAL_INTERVAL = 0.1
LOG_INTERVAL = 5.0


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Progress of a long run on stderr: a bar updated in place on a terminal, structured log
    lines every few seconds otherwise (a log collector gets one line per interval, not a bar).
    Counts ``unit`` done out of ``total`` (raised if more arrive meanwhile; 0: unknown)."""

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None,
                 tty: bool | None = None, clock: Callable[[], float] = time.monotonic,
                 interval: float | None = None, unit: str = "events") -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.clock = clock
        self.interval = interval if interval is not None else (
            TERMINAL_INTERVAL if self.tty else LOG_INTERVAL)
        self.started = clock()
        self._shown_at = self.started
        self._width = 0

    # --- figures ---------------------------------------------------------------------------

    def rate(self) -> float:
        elapsed = self.clock() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float | None:
        rate = self.rate()
        return (self.total - self.done) / rate if rate > 0 else None

    def line(self) -> str:
        total = max(self.total, 1)
        filled = min(BAR_WIDTH, BAR_WIDTH * self.done // total)
        eta = self.eta()
        return (f"{self.label} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}]"
                f" {self.done:,}/{self.total:,} {self.unit}  {self.rate():,.0f} {self.unit}/s"
                f"  ETA {format_duration(eta) if eta is not None else '?'}")

    # --- updates ---------------------------------------------------------------------------

    def __call__(self, n: int) -> None:
        self.advance(n)

    def advance(self, n: int) -> None:
        self.done += n
        self.total = max(self.total, self.done)
        now = self.clock()
        if now - self._shown_at >= self.interval:
            self._shown_at = now
            self._show()

    def _show(self) -> None:
        if self.tty:
            text = self.line()
            pad = max(0, self._width - len(text))
            self._width = len(text)
            self.stream.write("\r" + text + " " * pad)
            self.stream.flush()
        else:
            eta = self.eta()
            log.info("progress", label=self.label, done=self.done, total=self.total,
                     unit=self.unit, per_s=round(self.rate()),
                     eta_s=round(eta, 1) if eta is not None else None)

    def finish(self) -> None:
        """The last figures, and the terminal line ended."""
        if self.tty:
            self._show()
            self.stream.write("\n")
            self.stream.flush()
        else:
            log.info("progress.done", label=self.label, done=self.done, unit=self.unit,
                     seconds=round(self.clock() - self.started, 3),
                     per_s=round(self.rate()))
