-- The outbox: what the projector committed for publishing and the broker has not confirmed yet.
--
-- The projector inserts one row per published event in the same transaction as the
-- read-table writes of that event, in its global order (``seq``). The publisher reads the
-- rows in ``seq`` order, publishes them with confirms and deletes the confirmed prefix, so
-- the table holds only the events still to publish (it grows while RabbitMQ is away).
-- ``body`` is ``json`` (not ``jsonb``): the text is kept as written and published as is.

CREATE TABLE outbox (
    seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id   uuid NOT NULL,            -- the event's event_id: the AMQP message_id
    position     bigint NOT NULL,          -- the event's position in the store
    customer_id  uuid NOT NULL,
    chat_id      uuid NOT NULL,
    routing_key  text NOT NULL,            -- {customer_id}.{chat_id}.{event}
    body         json NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
);
