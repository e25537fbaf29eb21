"""The progress of a long run (a replay, an export, a verify): a bar redrawn in place on a
terminal, log lines otherwise."""

from __future__ import annotations

import io

from structlog.testing import capture_logs

from services.cli_support import Progress, format_duration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_terminal_gets_one_line_redrawn_in_place():
    clock, out = Clock(), io.StringIO()
    bar = Progress("rebuild read_v2", 1_000_000, stream=out, tty=True, clock=clock)
    clock.now += 10
    bar(250_000)
    clock.now += 10
    bar(250_000)
    bar.finish()
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1
    last = text.rsplit("\r", 1)[1]
    assert "500,000/1,000,000 events" in last
    assert "25,000 events/s" in last
    assert "ETA 0:20" in last
    assert "[##############..............]" in last


def test_without_a_terminal_it_logs_every_few_seconds(info_logs):
    clock, out = Clock(), io.StringIO()
    with capture_logs() as logs:
        bar = Progress("verify", 300, stream=out, tty=False, clock=clock, interval=5.0)
        clock.now += 1
        bar(100)  # too soon for a line
        clock.now += 5
        bar(100)
        clock.now += 4
        bar(100)
        bar.finish()
    assert out.getvalue() == ""
    assert [entry["event"] for entry in logs] == ["progress", "progress.done"]
    assert logs[0] | {"log_level": None} == {
        "event": "progress", "label": "verify", "done": 200, "total": 300,
        "unit": "events", "per_s": 33, "eta_s": 3.0, "log_level": None}
    assert logs[1]["done"] == 300 and logs[1]["seconds"] == 10.0


def test_more_events_than_counted_raise_the_total():
    clock = Clock()
    bar = Progress("rebuild", 10, stream=io.StringIO(), tty=True, clock=clock)
    clock.now += 1
    bar(15)
    assert bar.total == 15 and bar.eta() == 0


def test_durations():
    assert format_duration(59.6) == "1:00"
    assert format_duration(3 * 3600 + 62) == "3:01:02"
    assert format_duration(-5) == "0:00"
