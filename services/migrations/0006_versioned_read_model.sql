-- Versioned read tables, so `talk projections rebuild` can build a fresh copy beside the live
-- one and switch over without downtime.
--
-- The tables move (with their rows, indexes and constraints) into the schema read_v1;
-- rm_chats, rm_participants and rm_messages become plain views over the current version's
-- tables. Plain views are automatically updatable: the projector writes through them, the
-- query API reads through them, and neither names a version. A rebuild fills read_v<N+1>
-- and, in one transaction, points the views at it (projector/read_schema.py keeps the shape
-- of the tables a rebuild creates equal to these).

CREATE SCHEMA read_v1;
ALTER TABLE rm_chats SET SCHEMA read_v1;
ALTER TABLE rm_participants SET SCHEMA read_v1;
ALTER TABLE rm_messages SET SCHEMA read_v1;

CREATE VIEW rm_chats AS
    SELECT id, customer_id, type, name, detail, member_count, tm_create, tm_update, tm_delete
      FROM read_v1.rm_chats;
CREATE VIEW rm_participants AS
    SELECT id, customer_id, chat_id, owner_type, owner_id, tm_joined
      FROM read_v1.rm_participants;
CREATE VIEW rm_messages AS
    SELECT id, customer_id, chat_id, parent_id, owner_type, owner_id, type, text, medias,
           reactions, tm_create, tm_update, tm_delete
      FROM read_v1.rm_messages;

-- Which version the views read: one row, changed only by the switch of a rebuild.
CREATE TABLE read_model_version (
    only_row     boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version      integer NOT NULL CHECK (version >= 1),
    switched_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO read_model_version (version) VALUES (1);
