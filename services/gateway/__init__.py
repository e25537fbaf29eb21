"""The WebSocket gateway (``talk gateway``): delivers the published stream to agents.

``GET /v1.0/ws?token=…`` (the APIs' JWT) opens a socket. The client sends
``{"type": "subscribe", "topics": [...], "resume_token"?: "..."}`` and
``{"type": "unsubscribe", "topics": [...]}``; topics are ``chat:<chat_id>`` (the caller must
be a participant) and ``agent:<own agent id>`` (every talk the agent is in, including talks
it joins later). Frames out:

``{"type": <event>, "topic", "resume_token", "data"}``
    one per published event the socket may see (its agent is in the event's ``audience``,
    same customer) on a topic it subscribed to; an event matching several topics is sent
    once, on its ``chat:`` topic if subscribed, else on ``agent:``.
``{"type": "subscribed" | "unsubscribed", "topics": [...]}``
    the acknowledgement of a client message (only the topics it accepted); events of a
    topic flow from its ``subscribed`` frame on.
``{"type": "resync_required"}``
    the resume token points before the stream's retention (or into another stream): what
    was missed cannot be replayed; live events follow, the client re-reads through the API.
``{"type": "error", "error": <code>, "detail": <text>, "topic"?: ...}``
    a client message could not be honoured; the socket stays open. Codes:
    ``malformed_frame``, ``unknown_type``, ``invalid_topics``, ``unknown_topic``,
    ``not_found`` (no such talk for this customer), ``forbidden`` (not a participant, or
    another agent's topic), ``invalid_resume_token``, ``resume_in_progress``,
    ``too_many_topics``, ``unavailable`` (the read tables could not be asked).

Close codes: 1001 when the gateway shuts down, 4001 when the token expires, 4008 when a slow client's send buffer
overflows (see :mod:`services.gateway.connections`). A client that does not answer the
closing handshake within 5 s has its TCP connection aborted. Heartbeats are aiohttp's pings
every ``TALK_GATEWAY_HEARTBEAT`` seconds. Permessage-deflate is not offered (a zlib context
per socket would cost more memory than the rest of an idle socket).

The parts: :mod:`feed` (the stream interface and its message), :mod:`rabbitmq_feed` and
:mod:`inprocess_feed` (its two sources), :mod:`hub` (connections by agent, live dispatch),
:mod:`replay` (resuming from a token), :mod:`tokens` (resume tokens), :mod:`dedupe`
(dropping republished events), :mod:`protocol` (client messages), :mod:`subscriptions`
(topics and who may see them), :mod:`connections` (one socket's state and send buffer),
:mod:`metrics`, :mod:`app` (the aiohttp app) and :mod:`service` (``talk gateway``).
"""
