"""The event loop a service process runs on: asyncio's own, or uvloop (``TALK_EVENT_LOOP``).

Every long-running process (``talk up``, the command and query APIs, the gateway, the
projector) starts its main coroutine through :func:`run_main`; one-shot tools keep
``asyncio.run``. bench/RESULTS.md ("uvloop") has the side-by-side figures behind the default.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from services.settings import Settings

T = TypeVar("T")


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory of the loop named ``name`` (None: asyncio's default)."""
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


def run_main(main: Coroutine[Any, Any, T], settings: Settings) -> T:
    """``asyncio.run(main)`` on the loop ``settings.event_loop`` names."""
    with asyncio.Runner(loop_factory=loop_factory(settings.event_loop)) as runner:
        return runner.run(main)
