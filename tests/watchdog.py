"""A hung test ends the run with a report instead of holding it until CI's limit.

If one test (setup, call and teardown) runs longer than ``TALK_TEST_HANG_SECONDS`` (default
300; the slowest test takes seconds), the watchdog prints, outside pytest's capture, the test's
id, every asyncio task of the running loops with its stack, and every thread's stack; then it
interrupts the run (pytest reports the interruption and exits non-zero) and, if the run is
still alive a minute later, ends the process with status 3.
"""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import os
import signal
import sys
import threading
import time

import pytest

DEFAULT_SECONDS = 300.0
GRACE_AFTER_INTERRUPT = 60.0
HUNG_EXIT_STATUS = 3


class Watchdog:
    def __init__(self, config: pytest.Config, limit: float) -> None:
        self.config = config
        self.limit = limit
        self.current: str | None = None
        self.started = 0.0
        self._changed = threading.Event()  # a test started or ended
        self._finished = threading.Event()  # pytest is done
        threading.Thread(target=self._watch, name="test-watchdog", daemon=True).start()

    def test_started(self, nodeid: str) -> None:
        self.current, self.started = nodeid, time.monotonic()
        self._changed.set()

    def test_ended(self) -> None:
        self.current = None
        self._changed.set()

    def session_finished(self) -> None:
        self._finished.set()

    def _watch(self) -> None:
        while True:
            self._changed.clear()
            nodeid, started = self.current, self.started
            if nodeid is None:
                self._changed.wait()
                continue
            if self._changed.wait(started + self.limit - time.monotonic()):
                continue
            self._report(nodeid)
            os.kill(os.getpid(), signal.SIGINT)  # a real signal wakes the event loop
            if not self._finished.wait(GRACE_AFTER_INTERRUPT):
                os._exit(HUNG_EXIT_STATUS)
            return

    def _report(self, nodeid: str) -> None:
        capture = self.config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            capture.suspend_global_capture(in_=False)
        err = sys.stderr
        print(f"\n\nHUNG: {nodeid} has run for over {self.limit:.0f} s"
              f" (TALK_TEST_HANG_SECONDS). Its asyncio tasks, then its threads:", file=err)
        loops = [o for o in gc.get_objects() if isinstance(o, asyncio.AbstractEventLoop)]
        for loop in loops:
            if loop.is_closed():
                continue
            try:
                tasks = list(asyncio.all_tasks(loop))
            except RuntimeError:  # the set changed while copied: try once more
                tasks = list(asyncio.all_tasks(loop))
            for task in tasks:
                print(f"\n-- task {task.get_name()}: {task!r}", file=err)
                task.print_stack(file=err)
        err.flush()
        faulthandler.dump_traceback(file=err, all_threads=True)
        err.flush()


def install(config: pytest.Config) -> Watchdog:
    limit = float(os.environ.get("TALK_TEST_HANG_SECONDS", DEFAULT_SECONDS))
    return Watchdog(config, limit)
