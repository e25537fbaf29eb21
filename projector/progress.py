"""Progress of a long replay: a bar updated in place on a terminal, structured log lines
every few seconds otherwise (a log collector gets one line per interval, not a bar)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

import structlog

log = structlog.get_logger("talk.replay")

BAR_WIDTH = 28
TERMINAL_INTERVAL = 0.1
LOG_INTERVAL = 5.0


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Counts events done out of ``total`` (raised if more arrive meanwhile)."""

    def __init__(self, label: str, total: int, *, stream: TextIO | None = None,
                 tty: bool | None = None, clock: Callable[[], float] = time.monotonic,
                 interval: float | None = None) -> None:
        self.label = label
        self.total = total
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
                f" {self.done:,}/{self.total:,} events  {self.rate():,.0f} events/s"
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
            log.info("replay.progress", label=self.label, done=self.done, total=self.total,
                     events_per_s=round(self.rate()),
                     eta_s=round(eta, 1) if eta is not None else None)

    def finish(self) -> None:
        """The last figures, and the terminal line ended."""
        if self.tty:
            self._show()
            self.stream.write("\n")
            self.stream.flush()
        else:
            log.info("replay.done", label=self.label, done=self.done,
                     seconds=round(self.clock() - self.started, 3),
                     events_per_s=round(self.rate()))
