"""TALK_EVENT_LOOP: every service's main coroutine runs on the loop the setting names."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from services.event_loop import run_main
from services.settings import InvalidSettings, load_settings


async def _loop_type() -> type:
    return type(asyncio.get_running_loop())


def test_the_default_loop_is_uvloop():
    assert run_main(_loop_type(), load_settings()) is uvloop.Loop


def test_asyncio_runs_on_the_standard_loop():
    loop = run_main(_loop_type(), load_settings(event_loop="asyncio"))
    assert loop is not uvloop.Loop
    assert issubclass(loop, asyncio.BaseEventLoop)


def test_another_loop_name_is_refused():
    with pytest.raises(InvalidSettings, match="TALK_EVENT_LOOP"):
        load_settings(event_loop="trio")
