"""The gateway's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

CONNECTED_SOCKETS = Gauge("talk_gateway_connected_sockets", "WebSocket connections open.")
DROPPED_SLOW_CLIENTS = Counter(
    "talk_gateway_dropped_slow_clients_total",
    "Sockets closed (4008) because their send buffer overflowed.",
)
FRAMES_SENT = Counter("talk_gateway_frames_sent_total", "Frames written to sockets.")
STREAM_MESSAGES = Counter(
    "talk_gateway_stream_messages_total", "Messages read from the live stream.", ["outcome"]
)
REPLAYS = Counter("talk_gateway_replays_total", "Resumes from a token, by outcome.", ["outcome"])
STREAM_OFFSET = Gauge("talk_gateway_stream_offset", "Offset of the last live message read.")
TYPING = Counter(
    "talk_gateway_typing_total",
    "Typing signals: sent to the bus, dropped (rate, repeat), frames delivered.", ["outcome"],
)
REFUSED_SOCKETS = Counter(
    "talk_gateway_refused_sockets_total",
    "Sockets closed at once (4029) because their agent already held the maximum.",
)
