"""What the scheduled audit jobs run (deploy/k8s/ops/cronjobs.yaml): ``talk events checkpoint
--output DIR`` writes a new, complete checkpoint file there each run, ``talk events verify
--against DIR`` checks the newest one; both (and ``export``) report progress on stderr the way
``projections rebuild`` does, and answer with the shared exit codes."""

from __future__ import annotations

import io

import pytest
from structlog.testing import capture_logs

from events import audit_cli
from events.catalogue import chat_stream
from services.cli import build_parser
from services.cli_support import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE
from tests.integration.audit.conftest import (
    admin,
    seed_talks_sync,
    settings_for,
    talk_events_here,
)


def _run_logged(url: str, capsys, *args: str) -> tuple[int, str, str, list[dict]]:
    parsed = build_parser().parse_args(["events", *args])
    capsys.readouterr()
    with capture_logs() as logs:
        code = getattr(audit_cli, f"run_{parsed.action}")(settings_for(url), parsed)
    out = capsys.readouterr()
    return code, out.out, out.err, logs


def test_checkpoints_into_a_directory_and_verify_against_the_newest(fresh_database_url, tmp_path,
                                                                    capsys):
    url = fresh_database_url
    chats = seed_talks_sync(url, 2, 3)
    first = talk_events_here(url, capsys, "checkpoint", "--output", str(tmp_path))
    assert first.code == EXIT_OK, first.stderr
    seed_talks_sync(url, 1, 2)
    second = talk_events_here(url, capsys, "checkpoint", "--output", str(tmp_path))
    assert second.code == EXIT_OK, second.stderr
    files = sorted(tmp_path.iterdir())
    assert [f.name.startswith("checkpoint-") and f.suffix == ".jsonl" for f in files] == [True] * 2
    assert [len(f.read_text().splitlines()) for f in files] == [2, 3]  # nothing left partial
    assert f"to {files[1]}" in second.stderr

    ran = talk_events_here(url, capsys, "verify", "--against", str(tmp_path))
    assert ran.code == EXIT_OK, ran.stdout + ran.stderr
    assert f"verifying against {files[1]}" in ran.stderr
    assert "against 3 checkpointed heads: clean" in ran.stderr

    with admin(url) as conn:  # a checkpointed head erased: a finding, exit 1
        conn.execute("ALTER TABLE events DISABLE TRIGGER events_immutable")
        conn.execute("DELETE FROM events WHERE stream_id = %s AND version = 3",
                     (chat_stream(chats[0]),))
    ran = talk_events_here(url, capsys, "verify", "--against", str(tmp_path))
    assert ran.code == EXIT_FINDINGS, ran.stdout + ran.stderr


def test_verify_against_an_empty_directory_is_a_usage_error(fresh_database_url, tmp_path, capsys):
    ran = talk_events_here(fresh_database_url, capsys, "verify", "--against", str(tmp_path))
    assert ran.code == EXIT_USAGE
    assert "no checkpoint-*.jsonl in" in ran.stderr


@pytest.mark.parametrize("args, label, unit, done", [
    # An export stops below the oldest transaction still in flight on the whole server (other
    # sessions' too): what it had passed by then is what its progress must count.
    (("export",), "export", "events", "the lines written"),
    (("verify",), "verify", "events", 9),
    (("checkpoint", "-o", "-"), "checkpoint", "streams", 3),
])
def test_progress_goes_to_stderr(fresh_database_url, capsys, info_logs, args, label, unit, done):
    """Without a terminal, progress is log lines (stderr), never stdout; the last one says
    how much was done."""
    url = fresh_database_url
    seed_talks_sync(url, 3, 3)
    code, out, err, logs = _run_logged(url, capsys, *args)
    assert code == EXIT_OK, err
    finished = [e for e in logs if e["event"] == "progress.done"]
    assert len(finished) == 1, (logs, err)
    if done == "the lines written":
        done = len(out.splitlines())
        assert f"exported {done} events" in err
    assert (finished[0]["label"], finished[0]["unit"], finished[0]["done"]) == (label, unit, done)
    assert "progress" not in out


def test_progress_on_a_terminal_is_a_bar(fresh_database_url, capsys, monkeypatch):
    url = fresh_database_url
    seed_talks_sync(url, 2, 2)
    terminal = io.StringIO()
    terminal.isatty = lambda: True  # type: ignore[method-assign]
    monkeypatch.setattr("sys.stderr", terminal)
    parsed = build_parser().parse_args(["events", "verify"])
    assert audit_cli.run_verify(settings_for(url), parsed) == EXIT_OK
    assert "verify [############################] 4/4 events" in terminal.getvalue()
