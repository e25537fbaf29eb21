"""The one settings object, read from the environment (prefix ``TALK_``) once per process.

Build it with :func:`load_settings` at the entry point and pass it down; nothing reads the
environment anywhere else.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TALK_", extra="ignore", frozen=True)

    # Connections. ``database_url`` is required by every separate service; ``talk up``
    # starts an embedded PostgreSQL when it is unset.
    database_url: str | None = Field(default=None, description="PostgreSQL URL (libpq form).")
    amqp_url: str | None = Field(default=None, description="RabbitMQ URL; unset: no publishing.")
    jwt_secret: SecretStr | None = Field(default=None, description="HS256 secret for JWTs.")

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

    # Projector.
    projector_batch_size: int = Field(default=500, ge=1, le=10000)
    projector_poll_interval: float = Field(default=1.0, gt=0, description="Seconds between polls.")
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

    # Query API.
    read_your_writes_timeout: float = Field(default=2.0, ge=0, description="X-Talk-Min-Position wait.")

    # RabbitMQ stream.
    exchange: str = Field(default="talk.events")
    stream_queue: str = Field(default="talk.events.stream")
    stream_max_age: str = Field(default="7D", description="x-max-age of the stream queue.")
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

    def require_jwt_secret(self) -> str:
        if self.jwt_secret is None or not self.jwt_secret.get_secret_value():
            raise SystemExit("TALK_JWT_SECRET is not set")
        return self.jwt_secret.get_secret_value()


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; ``overrides`` win (used by the CLI and by tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]
