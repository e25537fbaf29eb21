"""Stopping a background task: cancel it, and cancel again until it has ended.

On Python 3.11, ``asyncio.wait_for`` returns the awaited result when a cancellation arrives in
the same loop iteration as that result, and the cancellation is lost. Libraries wait that way
inside (psycopg_pool hands a waiting client its connection through ``wait_for``), so a task
cancelled while it waits for a pooled connection can run on as if nothing happened. A loop that
only ends by cancellation then goes back to its sleep: the idempotency purge slept an hour
with its app's shutdown waiting on it. ``cancel_and_wait`` cancels again while the task runs.
"""

from __future__ import annotations

import asyncio
import contextlib

AGAIN_AFTER = 0.5  # seconds: long enough for a task's own clean-up to finish in between


async def cancel_and_wait(task: asyncio.Task | None, *, again_after: float = AGAIN_AFTER) -> None:
    """Cancel ``task`` and return once it has ended (however it ended: its result or error is
    consumed, as a stopping caller has no use for it)."""
    if task is None:
        return
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=again_after)
    if not task.cancelled():
        with contextlib.suppress(Exception):
            task.result()
