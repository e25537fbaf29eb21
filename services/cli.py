"""The ``talk`` command: every service and tool of Talk, one subcommand each.

Each subcommand builds the settings once from the environment and passes them down.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from uuid import UUID

from services.settings import Settings, load_settings


def _uuid(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talk", description="Talk: the event-sourced chat backend.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = sub.add_parser("up", help="run everything in one process (development)")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8080)
    up.add_argument("--data-dir", default=".talk", help="embedded Postgres data and the generated secret")

    sub.add_parser("migrate", help="apply the database migrations")
    sub.add_parser("command-api", help="run the command API (writes)")
    sub.add_parser("query-api", help="run the query API (reads)")
    sub.add_parser("projector", help="run the projector (read tables and publishing)")
    sub.add_parser("gateway", help="run the WebSocket gateway")

    token = sub.add_parser("token", help="print a JWT signed with TALK_JWT_SECRET")
    token.add_argument("--customer-id", type=_uuid, required=True)
    token.add_argument("--agent-id", type=_uuid, required=True)
    token.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    token.add_argument("--role", action="append", default=[], help="a role claim, e.g. audit")
    token.add_argument("--data-dir", default=".talk", help="where `talk up` keeps its generated secret")

    projections = sub.add_parser("projections", help="rebuild or verify the read tables")
    psub = projections.add_subparsers(dest="action", required=True, metavar="ACTION")
    psub.add_parser("rebuild", help="rebuild the read tables from the history, without downtime")
    psub.add_parser("verify", help="compare the read tables with a rebuild from the history")

    events = sub.add_parser("events", help="export, inspect and verify the event history")
    esub = events.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = esub.add_parser("export", help="stream events in global order")
    export.add_argument("--customer-id", type=_uuid)
    export.add_argument("--chat-id", type=_uuid)
    export.add_argument("--since", help="a timestamp (UTC) or a position")
    export.add_argument("--until", help="a timestamp (UTC) or a position")
    export.add_argument("--format", choices=("ndjson", "csv"), default="ndjson")
    state = esub.add_parser("state", help="a talk as it was at a moment")
    state.add_argument("--chat-id", type=_uuid, required=True)
    state.add_argument("--at", required=True, help="a timestamp (UTC) or a position")
    verify = esub.add_parser("verify", help="check the hash chain of every stream")
    verify.add_argument("--against", help="a checkpoint file written by `talk events checkpoint`")
    checkpoint = esub.add_parser("checkpoint", help="export every stream's head hash")
    checkpoint.add_argument("--output", "-o", default="-", help="file to write (- for stdout)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = load_settings()
    from services.logging import configure_logging

    configure_logging(settings)
    handler = _HANDLERS[args.command]
    code = handler(settings, args)
    return int(code or 0)


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from services.migrate import apply_migrations

    asyncio.run(apply_migrations(settings.require_database_url()))
    return 0


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
    return 0


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
