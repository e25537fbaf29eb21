-- The event store: the source of truth. Rows are never updated or deleted.

CREATE TABLE streams (
    stream_id   text PRIMARY KEY,
    version     bigint NOT NULL CHECK (version >= 0)
);

CREATE SEQUENCE events_position_seq AS bigint;

CREATE TABLE events (
    position        bigint NOT NULL DEFAULT nextval('events_position_seq') UNIQUE,
    tx_id           xid8 NOT NULL DEFAULT pg_current_xact_id(),
    event_id        uuid PRIMARY KEY,
    stream_id       text NOT NULL,
    version         bigint NOT NULL CHECK (version >= 1),
    type            text NOT NULL,
    schema_version  integer NOT NULL CHECK (schema_version >= 1),
    data            jsonb NOT NULL,
    metadata        jsonb NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (stream_id, version)
);
ALTER SEQUENCE events_position_seq OWNED BY events.position;

-- The global order readers follow.
CREATE INDEX events_global_order ON events (tx_id, position);

CREATE FUNCTION talk_events_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'stored events are immutable (% on events refused)', TG_OP
        USING ERRCODE = 'TK002';
END $$;

CREATE TRIGGER events_immutable
    BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION talk_events_are_immutable();
CREATE TRIGGER events_no_truncate
    BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION talk_events_are_immutable();

-- Append events to one or more streams in one statement (one round trip, one transaction).
--
-- For stream i: p_expected[i] is the version the caller read; p_counts[i] is how many
-- events it gets. A count of 0 only checks the version and holds a share lock on the
-- stream's row until commit, so a concurrent append to that stream waits for this
-- transaction (and then fails its own check, having read an older version). The events
-- come as parallel arrays with their stream and version already numbered by the caller.
-- A stream not at the expected version raises SQLSTATE TK001 with the stream id as the
-- DETAIL. Returns (position, tx_id) of each appended event, in the order given.
CREATE FUNCTION talk_append_events(
    p_streams         text[],
    p_expected        bigint[],
    p_counts          integer[],
    p_event_ids       uuid[],
    p_event_streams   text[],
    p_event_versions  bigint[],
    p_types           text[],
    p_schema_versions integer[],
    p_data            jsonb[],
    p_metadata        jsonb
) RETURNS TABLE (event_position bigint, event_tx_id xid8)
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_streams, 1), 0) LOOP
        IF p_counts[i] = 0 THEN
            IF p_expected[i] = 0 THEN
                PERFORM 1 WHERE NOT EXISTS (SELECT 1 FROM streams WHERE stream_id = p_streams[i]);
            ELSE
                PERFORM 1 FROM streams
                 WHERE stream_id = p_streams[i] AND version = p_expected[i] FOR SHARE;
            END IF;
        ELSIF p_expected[i] = 0 THEN
            INSERT INTO streams (stream_id, version) VALUES (p_streams[i], p_counts[i])
                ON CONFLICT (stream_id) DO NOTHING;
        ELSE
            UPDATE streams SET version = version + p_counts[i]
             WHERE stream_id = p_streams[i] AND version = p_expected[i];
        END IF;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'stream % is not at version %', p_streams[i], p_expected[i]
                USING ERRCODE = 'TK001', DETAIL = p_streams[i];
        END IF;
    END LOOP;

    RETURN QUERY
    INSERT INTO events (event_id, stream_id, version, type, schema_version, data, metadata)
    SELECT e.event_id, e.stream_id, e.version, e.type, e.schema_version, e.data, p_metadata
      FROM unnest(p_event_ids, p_event_streams, p_event_versions, p_types, p_schema_versions, p_data)
           WITH ORDINALITY AS e(event_id, stream_id, version, type, schema_version, data, ord)
     ORDER BY e.ord
    RETURNING position, tx_id;

    PERFORM pg_notify('talk_events', '');
END $$;
