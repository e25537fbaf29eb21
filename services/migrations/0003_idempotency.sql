-- Idempotency keys of POST requests (command side). Kept 24 hours.
CREATE TABLE idempotency_keys (
    customer_id   uuid NOT NULL,
    agent_id      uuid NOT NULL,
    key           text NOT NULL,
    request_hash  text NOT NULL,
    status        integer NOT NULL DEFAULT 0,
    body          jsonb,
    position      bigint NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (customer_id, agent_id, key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
