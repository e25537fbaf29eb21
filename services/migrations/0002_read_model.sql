-- Read tables, written only by the projector and read by the query API.

CREATE TABLE projector_checkpoints (
    name        text PRIMARY KEY,
    last_tx     xid8 NOT NULL DEFAULT '0'::xid8,
    last_pos    bigint NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO projector_checkpoints (name) VALUES ('read_model');

CREATE TABLE rm_chats (
    id            uuid PRIMARY KEY,
    customer_id   uuid NOT NULL,
    type          text NOT NULL,
    name          text NOT NULL,
    detail        text NOT NULL,
    member_count  integer NOT NULL DEFAULT 0,
    tm_create     timestamptz NOT NULL,
    tm_update     timestamptz,
    tm_delete     timestamptz
);

CREATE TABLE rm_participants (
    id            uuid PRIMARY KEY,
    customer_id   uuid NOT NULL,
    chat_id       uuid NOT NULL,
    owner_type    text NOT NULL,
    owner_id      uuid NOT NULL,
    tm_joined     timestamptz NOT NULL,
    UNIQUE (chat_id, owner_id)
);
-- "talks I am in", newest first, and the participant list of a talk.
CREATE INDEX rm_participants_by_owner ON rm_participants (owner_id, customer_id);

CREATE TABLE rm_messages (
    id            uuid PRIMARY KEY,
    customer_id   uuid NOT NULL,
    chat_id       uuid NOT NULL,
    parent_id     uuid,
    owner_type    text NOT NULL,
    owner_id      uuid NOT NULL,
    type          text NOT NULL,
    text          text NOT NULL,
    medias        jsonb NOT NULL DEFAULT '[]',
    reactions     jsonb NOT NULL DEFAULT '[]',
    tm_create     timestamptz NOT NULL,
    tm_update     timestamptz,
    tm_delete     timestamptz
);
-- Keyset pagination, newest first, ties broken by id.
CREATE INDEX rm_messages_by_chat ON rm_messages (chat_id, tm_create DESC, id DESC);
CREATE INDEX rm_messages_by_parent ON rm_messages (parent_id, tm_create DESC, id DESC)
    WHERE parent_id IS NOT NULL;
CREATE INDEX rm_chats_by_create ON rm_chats (tm_create DESC, id DESC);
