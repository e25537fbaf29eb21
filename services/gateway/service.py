"""``talk gateway``: the WebSocket gateway as its own process, on ``settings.gateway_port``,
reading the RabbitMQ stream (``TALK_AMQP_URL`` is required)."""

from __future__ import annotations

from services.amqp import require_amqp_url
from services.gateway.app import create_gateway_app
from services.run import run_http_service
from services.settings import Settings


def run_gateway_service(settings: Settings) -> int:
    require_amqp_url(settings)
    settings.require_database_url()
    return run_http_service(create_gateway_app(settings), settings, settings.gateway_port,
                            "gateway")
