"""The ``talk`` command: every service and tool of Talk, one subcommand each.

Each subcommand builds the settings once from the environment and passes them down. Exit
codes, argument types and the progress printer are :mod:`services.cli_support`'s: 0 ok,
1 findings, 2 usage, 3 unavailable.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys

from services.cli_support import (
    EXIT_CODES_EPILOG,
    EXIT_FINDINGS,
    EXIT_OK,
    EXIT_USAGE,
    add_command,
    fail,
    positive_seconds,
    run_tool,
    uuid_arg,
)
from services.settings import InvalidSettings, Settings, load_settings

MIGRATE_WAIT_INTERVAL = 2.0  # seconds between two checks of `talk migrate --check --wait`
MAX_REPLAY_WORKERS = 64


def _workers(text: str) -> int:
    """``--workers K`` of ``talk projections``: 1 to :data:`MAX_REPLAY_WORKERS`."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_REPLAY_WORKERS:
        raise argparse.ArgumentTypeError(f"a whole number from 1 to {MAX_REPLAY_WORKERS}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="talk", description="Talk: the event-sourced chat backend.",
        epilog=EXIT_CODES_EPILOG)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = add_command(sub, "up", "run everything in one process (development)", (
        "Migrations, the command and query APIs, the gateway and the projector in one process "
        "on one port. Without TALK_DATABASE_URL it runs an embedded PostgreSQL (the "
        "`talk[embedded]` extra); without TALK_JWT_SECRET it generates one in the data "
        "directory."))
    up.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    up.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    up.add_argument("--data-dir", default=".talk", help="embedded Postgres data and the generated secret")

    migrate = add_command(sub, "migrate", "apply the database migrations", (
        "Apply the SQL migrations the database lacks, in order (advisory-locked: concurrent "
        "runs take turns). With --check, apply nothing: exit 1 if some are pending, 0 if the "
        "schema is at the version this code needs."))
    migrate.add_argument("--check", action="store_true",
                         help="only check: exit 1 while migrations are pending")
    migrate.add_argument("--wait", type=positive_seconds, default=0.0, metavar="SECONDS",
                         help="with --check: check again every 2 s until the schema is ready or "
                              "SECONDS have passed (what the Kubernetes initContainers run)")
    add_command(sub, "command-api", "run the command API (writes)", (
        "Serve POST/PUT/DELETE under /v1.0/ on TALK_COMMAND_API_PORT (8081), with /livez, "
        "/readyz and /metrics."))
    add_command(sub, "query-api", "run the query API (reads)", (
        "Serve GET /v1.0/... on TALK_QUERY_API_PORT (8082), with /livez, /readyz and /metrics."))
    add_command(sub, "projector", "run the projector (read tables and publishing)", (
        "Follow the event store into the read tables and, with TALK_AMQP_URL, publish to "
        "RabbitMQ; TALK_PROJECTOR_PORT (8084) serves /livez, /readyz and /metrics."))
    add_command(sub, "gateway", "run the WebSocket gateway", (
        "Serve /v1.0/ws on TALK_GATEWAY_PORT (8083), fed by the RabbitMQ stream."))

    token = add_command(sub, "token", "print a JWT signed with TALK_JWT_SECRET", (
        "Print a JWT for an agent, signed with TALK_JWT_SECRET (or with the secret `talk up` "
        "generated in its data directory)."))
    token.add_argument("--customer-id", type=uuid_arg, required=True)
    token.add_argument("--agent-id", type=uuid_arg, required=True)
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    token.add_argument("--role", action="append", default=[], help="a role claim, e.g. audit")
    token.add_argument("--data-dir", default=".talk", help="where `talk up` keeps its generated secret")

    add_command(sub, "secret", "print a new random TALK_JWT_SECRET", (
        "Print 48 random bytes, URL-safe base64 (64 characters): a value for TALK_JWT_SECRET."))

    projections = add_command(sub, "projections", "rebuild or verify the read tables", (
        "Rebuild the read tables from the history, or compare them with a rebuild. Progress "
        "goes to stderr."))
    psub = projections.add_subparsers(dest="action", required=True, metavar="ACTION")
    rebuild = add_command(psub, "rebuild", "rebuild the read tables from the history, without downtime", (
        "Project the whole history into a new copy of the read tables beside the live one "
        "and switch the query API to it in one transaction. With TALK_PROJECTOR_PARTITIONS "
        "changed, it lays the projector's checkpoints out anew (every projector stopped)."))
    verify = add_command(psub, "verify", "compare the read tables with a rebuild from the history", (
        "Rebuild into a scratch schema and compare it row by row with the live read tables; "
        "exit 1 if they differ."))
    for command in (rebuild, verify):
        command.add_argument("--workers", type=_workers, default=1, metavar="K",
                             help="replay K slices of the talks side by side, each in a "
                                  "process of its own (default 1)")

    events = add_command(sub, "events", "export, inspect and verify the event history", (
        "The event history for auditors. Output goes to stdout; progress and summaries to "
        "stderr."))
    esub = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = add_command(esub, "export", "stream events in global order", (
        "Write the stored events (optionally of one customer or talk, between two moments) as "
        "NDJSON or CSV to stdout."))
    export.add_argument("--customer-id", type=uuid_arg)
    export.add_argument("--chat-id", type=uuid_arg)
    export.add_argument("--since", help="a timestamp (UTC) or a position")
    export.add_argument("--until", help="a timestamp (UTC) or a position")
    export.add_argument("--format", choices=("ndjson", "csv"), default="ndjson")
    state = add_command(esub, "state", "a talk as it was at a moment", (
        "Print a talk, its participants and messages as they were at a timestamp or position; "
        "exit 1 if the talk did not exist then."))
    state.add_argument("--chat-id", type=uuid_arg, required=True)
    state.add_argument("--at", required=True, help="a timestamp (UTC) or a position")
    verify = add_command(esub, "verify", "check the hash chain of every stream", (
        "Walk every stream's hash chain and print each problem found; with --against, also "
        "check that every head of a checkpoint taken earlier is still there, unchanged. Exit "
        "1 if anything was found."))
    verify.add_argument("--against", metavar="PATH",
                        help="a checkpoint file written by `talk events checkpoint` (- for "
                             "stdin), or a directory of them (the newest is used)")
    checkpoint = add_command(esub, "checkpoint", "export every stream's head hash", (
        "Write every stream's head (version and hash) as JSON lines, for `talk events verify "
        "--against` later. Keep checkpoints outside the database."))
    checkpoint.add_argument("--output", "-o", default="-", metavar="PATH",
                            help="file to write (- for stdout), or a directory: a new file "
                                 "checkpoint-<UTC time>.jsonl is written there")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # a usage error exits 2 here
    if args.command == "secret":
        return _secret()
    try:
        settings = load_settings()
    except InvalidSettings as exc:
        return fail(args.command, str(exc), EXIT_USAGE)
    from services.logging import configure_logging

    configure_logging(settings)
    handler = _HANDLERS[args.command]
    try:
        code = handler(settings, args)
    except SystemExit as exc:
        if isinstance(exc.code, str):  # a required setting is missing (Settings.require_*)
            return fail(args.command, exc.code, EXIT_USAGE)
        raise
    return int(code or 0)


def _secret() -> int:
    print(secrets.token_urlsafe(48))
    return EXIT_OK


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from services.migrate import apply_migrations, describe_pending, wait_for_schema

    url = settings.require_database_url()
    if args.wait and not args.check:
        return fail("migrate", "--wait goes with --check", EXIT_USAGE)
    if not args.check:
        def apply() -> int:
            asyncio.run(apply_migrations(url))
            return EXIT_OK

        return run_tool("migrate", apply)

    def check() -> int:
        pending = asyncio.run(wait_for_schema(url, settings.db_connect_timeout, args.wait,
                                              MIGRATE_WAIT_INTERVAL))
        if pending:
            return fail("migrate", describe_pending(pending), EXIT_FINDINGS)
        print("talk migrate: the schema is up to date", file=sys.stderr)
        return EXIT_OK

    return run_tool("migrate", check)


def _command_api(settings: Settings, args: argparse.Namespace) -> int:
    from command_api.app import create_app
    from services.run import run_http_service

    return run_http_service(create_app(settings), settings, settings.command_api_port, "command-api")


def _query_api(settings: Settings, args: argparse.Namespace) -> int:
    from query_api.app import create_app
    from services.run import run_http_service

    return run_http_service(create_app(settings), settings, settings.query_api_port, "query-api")


def _projector(settings: Settings, args: argparse.Namespace) -> int:
    from projector.service import run_projector_service

    return run_projector_service(settings)


def _gateway(settings: Settings, args: argparse.Namespace) -> int:
    from services.gateway.service import run_gateway_service

    return run_gateway_service(settings)


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from services.auth import mint_token
    from services.secrets import jwt_secret_for_cli

    secret = jwt_secret_for_cli(settings, args.data_dir)
    print(mint_token(secret, args.customer_id, args.agent_id, args.ttl, args.role or None))
    return EXIT_OK


def _up(settings: Settings, args: argparse.Namespace) -> int:
    from services.up import run_up

    return run_up(settings, host=args.host, port=args.port, data_dir=args.data_dir)


def _projections(settings: Settings, args: argparse.Namespace) -> int:
    from projector import rebuild, verify

    return {"rebuild": rebuild.run_rebuild, "verify": verify.run_verify}[args.action](settings, args)


def _events(settings: Settings, args: argparse.Namespace) -> int:
    from events import audit_cli

    return {
        "export": audit_cli.run_export,
        "state": audit_cli.run_state,
        "verify": audit_cli.run_verify,
        "checkpoint": audit_cli.run_checkpoint,
    }[args.action](settings, args)


_HANDLERS = {
    "up": _up,
    "migrate": _migrate,
    "command-api": _command_api,
    "query-api": _query_api,
    "projector": _projector,
    "gateway": _gateway,
    "token": _token,
    "projections": _projections,
    "events": _events,
}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
