"""The WebSocket gateway (``talk gateway``): delivers the published stream to agents.

``GET /v1.0/ws?token=…`` (the APIs' JWT) opens a socket. The client sends
``{"type": "subscribe", "topics": [...], "resume_token"?: "..."}`` and
``{"type": "unsubscribe", "topics": [...]}``; topics are ``chat:<chat_id>`` (the caller must
be a participant; a subscribe right after the command that made it one is accepted, see
:mod:`membership`) and ``agent:<own agent id>`` (every talk the agent is in, including talks
it joins later). ``{"type": "typing", "chat_id"}`` tells the talk's other participants
(:mod:`typing`). Frames out:

``{"type": <event>, "topic", "resume_token", "data"}``
    one per published event the socket may see (its agent is in the event's ``audience``,
    same customer) on a topic it subscribed to; an event matching several topics is sent
    once, on its ``chat:`` topic if subscribed, else on ``agent:``.
``{"type": "subscribed" | "unsubscribed", "topics": [...]}``
    the acknowledgement of a client message (only the topics it accepted); events of a
    topic flow from its ``subscribed`` frame on.
``{"type": "typing", "topic": "chat:<id>", "data": {"chat_id", "agent_id"}}``
    another participant is typing (at most one per agent and talk every 2 s; not stored).
``{"type": "resync_required"}``
    the resume token points before the stream's retention (or into another stream, or is
    not this deployment's token for this customer): what was missed cannot be replayed;
    live events follow, the client re-reads through the API.
``{"type": "error", "error": <code>, "detail": <text>, "topic"?: ...}``
    a client message could not be honoured; the socket stays open. Codes:
    ``malformed_frame``, ``unknown_type``, ``invalid_topics``, ``unknown_topic``,
    ``not_found`` (no such talk for this customer), ``forbidden`` (not a participant, or
    another agent's topic), ``invalid_resume_token``, ``resume_in_progress``,
    ``too_many_topics`` (refused topics count), ``rate_limited``, ``invalid_chat_id``,
    ``unavailable`` (the read tables could not be asked, or had not caught up in 2 s).

Close codes: 1001 when the gateway shuts down, 4001 when the token expires, 4008 when a slow
client's send buffer overflows (see :mod:`services.gateway.connections`), 4029 when the agent
already holds ``TALK_GATEWAY_MAX_SOCKETS_PER_AGENT`` sockets here. The whole contract is
:mod:`contract`, published as AsyncAPI 3.0 at ``GET /v1.0/asyncapi.json`` (:mod:`asyncapi`). A client that does not answer the
closing handshake within 5 s has its TCP connection aborted. Heartbeats are aiohttp's pings
every ``TALK_GATEWAY_HEARTBEAT`` seconds. Permessage-deflate is not offered (a zlib context
per socket would cost more memory than the rest of an idle socket).

The parts: :mod:`feed` (the stream interface and its message), :mod:`rabbitmq_feed` and
:mod:`inprocess_feed` (its two sources), :mod:`hub` (connections by agent, live dispatch),
:mod:`replay` (resuming from a token), :mod:`tokens` (resume tokens), :mod:`dedupe`
(dropping republished events), :mod:`protocol` (client messages), :mod:`subscriptions`
(topics), :mod:`membership` (who may follow a talk), :mod:`typing` and :mod:`ephemeral`
(typing signals across gateways), :mod:`limits` (rates, replay slots), :mod:`connections`
(one socket's state and send buffer), :mod:`contract` and :mod:`asyncapi` (the published
protocol), :mod:`metrics`, :mod:`app` (the aiohttp app) and :mod:`service` (``talk gateway``).
"""
