"""The one settings object, read from the environment (prefix ``TALK_``) once per process.

Build it with :func:`load_settings` at the entry point and pass it down; nothing reads the
environment anywhere else.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_JWT_SECRET_BYTES = 32  # HS256: a key of at least the hash's 256 bits
MAKE_A_SECRET = ("make one with `talk secret` (or python3 -c 'import secrets; "
                 "print(secrets.token_urlsafe(48))')")
# Secrets printed in this repository's deploy files and docs, or in earlier versions of them:
# public, so refused whatever their length.
KNOWN_PLACEHOLDER_SECRETS = frozenset({
    "local-dev-secret-change-me-0123456789abcdef",
    "CHANGE-ME-to-at-least-32-random-bytes",
    "CHANGE-ME",
    "change-me",
    "changeme",
    "secret",
})


def jwt_secret_problem(value: str) -> str | None:
    """Why ``value`` cannot be the JWT secret, or None if it can."""
    if value in KNOWN_PLACEHOLDER_SECRETS or "change-me" in value.lower():
        return f"TALK_JWT_SECRET is a published placeholder, not a secret: {MAKE_A_SECRET}"
    size = len(value.encode("utf-8"))
    if size < MIN_JWT_SECRET_BYTES:
        return (f"TALK_JWT_SECRET is {size} bytes long; it must be at least "
                f"{MIN_JWT_SECRET_BYTES} random bytes: {MAKE_A_SECRET}")
    return None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TALK_", extra="ignore", frozen=True)

    # Connections. ``database_url`` is required by every separate service; ``talk up``
    # starts an embedded PostgreSQL when it is unset.
    database_url: str | None = Field(default=None, description="PostgreSQL URL (libpq form).")
    read_database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL the query API and the gateway's membership checks read "
                    "from, e.g. a hot standby of TALK_DATABASE_URL; unset: TALK_DATABASE_URL.")
    amqp_url: str | None = Field(
        default=None,
        description="RabbitMQ URL, or one URL per node of a cluster separated by commas (the "
                    "first that answers is used; after a loss, the next); unset: no publishing.")
    jwt_secret: SecretStr | None = Field(default=None, description="HS256 secret for JWTs.")

    @field_validator("amqp_url")
    @classmethod
    def _amqp_urls(cls, value: str | None) -> str | None:
        """Each comma-separated entry is an AMQP URL (the message never shows the value: it
        holds a password)."""
        if value is None or not value.strip():
            return None
        entries = [part.strip() for part in value.split(",") if part.strip()]
        for number, entry in enumerate(entries, 1):
            if not entry.startswith(("amqp://", "amqps://")):
                raise ValueError(f"entry {number} of {len(entries)} is not an amqp:// or "
                                 "amqps:// URL (several URLs are separated by commas)")
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _strong_jwt_secret(cls, value: SecretStr | None) -> SecretStr | None:
        """A weak secret refuses to start: every process that reads it stops here."""
        if value is None or not value.get_secret_value():
            return None
        problem = jwt_secret_problem(value.get_secret_value())
        if problem:
            raise ValueError(problem)
        return value

    # Ports and bind address of each service.
    host: str = Field(default="0.0.0.0", description="Bind address of the HTTP services.")
    command_api_port: int = Field(default=8081, ge=1, le=65535)
    query_api_port: int = Field(default=8082, ge=1, le=65535)
    gateway_port: int = Field(default=8083, ge=1, le=65535)
    projector_port: int = Field(default=8084, ge=1, le=65535, description="Health and metrics.")

    # Postgres pool.
    db_pool_min_size: int = Field(default=2, ge=1)
    db_pool_max_size: int = Field(default=10, ge=1)
    db_connect_timeout: float = Field(default=5.0, gt=0)

    # Logging.
    log_level: str = Field(default="INFO")
    log_format: str = Field(default="json", pattern="^(json|console)$")

    # Event loop of every service process (bench/RESULTS.md, "uvloop").
    event_loop: str = Field(default="uvloop", pattern="^(asyncio|uvloop)$",
                            description="`uvloop` or `asyncio` (the standard loop).")

    # Projector.
    projector_batch_size: int = Field(
        default=2000, ge=1, le=10000,
        description="Events per projector transaction at most (and outbox rows per publish "
                    "batch); bench.projector: 2,000 cost Postgres least per event.")
    projector_poll_interval: float = Field(default=1.0, gt=0, description="Seconds between polls.")
    projector_partitions: int = Field(
        default=1, ge=1, le=1024,
        description="Partitions of projection and publishing, by a hash of the talk id; fixed "
                    "per deployment (changed only with `talk projections rebuild`).")
    publish_lag_limit: int = Field(
        default=10_000, ge=0,
        description="Outbox rows not yet confirmed by RabbitMQ beyond which the projector's "
                    "/readyz fails (0: never).")

    # Command API.
    command_stream_cache_streams: int = Field(
        default=10_000, ge=0, description="Streams the command API keeps decoded in memory.")
    command_stream_cache_bytes: int = Field(
        default=64 * 1024 * 1024, ge=0,
        description="Bytes of stored events (data and metadata as JSON) that cache may hold.")
    inprocess_feed_messages: int = Field(
        default=10_000, ge=1,
        description="talk up without RabbitMQ: published messages its gateway keeps to resume.")
    inprocess_feed_bytes: int = Field(
        default=16 * 1024 * 1024, ge=0,
        description="talk up without RabbitMQ: bytes of published bodies it keeps to resume.")

    # Query API.
    read_your_writes_timeout: float = Field(default=2.0, ge=0, description="X-Talk-Min-Position wait.")

    # RabbitMQ stream.
    exchange: str = Field(default="talk.events")
    stream_queue: str = Field(default="talk.events.stream")
    stream_max_age: str = Field(default="7D", description="x-max-age of the stream queue.")
    stream_initial_cluster_size: int | None = Field(
        default=None, ge=1,
        description="x-initial-cluster-size of the stream queue: how many RabbitMQ nodes hold "
                    "a replica, fixed when the queue is created; unset: RabbitMQ's default "
                    "(every node of the cluster running at that moment).")
    amqp_timeout: float = Field(
        default=10.0, gt=0,
        description="Seconds to connect to RabbitMQ, and without any publish confirm before "
                    "the publisher reconnects.")

    # WebSocket gateway.
    gateway_heartbeat: float = Field(default=30.0, gt=0, description="Seconds between pings.")
    gateway_send_buffer_bytes: int = Field(default=262_144, ge=4096,
                                           description="Pending bytes per socket before 4008.")
    gateway_resume_timeout: float = Field(default=5.0, gt=0,
                                          description="Seconds to find a resume token's event.")
    gateway_max_sockets_per_agent: int = Field(
        default=20, ge=1, description="Sockets one agent may hold on one gateway; the next is "
                                      "closed with 4029.")
    ephemeral_exchange: str = Field(
        default="talk.ephemeral",
        description="Non-durable fanout exchange carrying typing signals between gateways.")

    # Shutdown.
    shutdown_timeout: float = Field(default=10.0, gt=0, description="Seconds to drain on SIGTERM.")

    def require_database_url(self) -> str:
        if not self.database_url:
            raise SystemExit("TALK_DATABASE_URL is not set (e.g. postgresql://user@127.0.0.1:5432/talk)")
        return self.database_url

    def require_read_database_url(self) -> str:
        """Where reads go: ``TALK_READ_DATABASE_URL``, else the primary."""
        return self.read_database_url or self.require_database_url()

    @property
    def reads_elsewhere(self) -> bool:
        """Whether reads go to another server (a standby) than writes."""
        return bool(self.read_database_url) and self.read_database_url != self.database_url

    def require_jwt_secret(self) -> str:
        if self.jwt_secret is None or not self.jwt_secret.get_secret_value():
            raise SystemExit(f"TALK_JWT_SECRET is not set: {MAKE_A_SECRET}")
        return self.jwt_secret.get_secret_value()


class InvalidSettings(ValueError):
    """Settings that refuse to start; the message names each setting and what is wrong,
    never the value (it may be a secret)."""


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; ``overrides`` win (used by the CLI and by tests)."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_input=False, include_url=False):
            name = "TALK_" + "_".join(str(part) for part in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            lines.append(message if message.startswith(name) else f"{name}: {message}")
        raise InvalidSettings("; ".join(lines)) from None
