-- Tamper evidence: every stored event carries a SHA-256 hash chained to the previous event
-- of its stream, and each stream row keeps the hash of its head.
--
--   hash = sha256(prev_hash || utf8(canonical text))
--
-- prev_hash is the hash of the event before it in its stream (version - 1); the first event
-- of a stream chains to 32 zero bytes. The canonical text is the envelope as a JSON array in
-- Postgres' jsonb text form (keys ordered by byte length then bytes, ", " and ": " as
-- separators, numbers as numeric prints them, non-ASCII characters as they are):
--
--   ["<event_id>", "<stream_id>", <version>, "<type>", <schema_version>,
--    <recorded_at as integer microseconds since the Unix epoch>, <data>, <metadata>]
--
-- events/hashchain.py builds the same text in Python, so `talk events verify` recomputes
-- every hash on the client without trusting this code.

-- Appends take streams before events: lock in that order for the whole migration, so that
-- an append in flight finishes (or waits) instead of deadlocking with it.
LOCK TABLE streams, events IN ACCESS EXCLUSIVE MODE;

-- The canonical text of one event (jsonb output does not depend on any setting).
CREATE FUNCTION talk_event_canonical(
    p_event_id        uuid,
    p_stream_id       text,
    p_version         bigint,
    p_type            text,
    p_schema_version  integer,
    p_recorded_at     timestamptz,
    p_data            jsonb,
    p_metadata        jsonb
) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_array(
        p_event_id::text, p_stream_id, p_version, p_type, p_schema_version,
        (extract(epoch FROM p_recorded_at) * 1000000)::bigint, p_data, p_metadata)::text
$$;

-- One link of the chain: the hash of an event given the hash of the one before it.
CREATE FUNCTION talk_event_hash(
    p_prev            bytea,
    p_event_id        uuid,
    p_stream_id       text,
    p_version         bigint,
    p_type            text,
    p_schema_version  integer,
    p_recorded_at     timestamptz,
    p_data            jsonb,
    p_metadata        jsonb
) RETURNS bytea LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT sha256(p_prev || convert_to(talk_event_canonical(
        p_event_id, p_stream_id, p_version, p_type, p_schema_version, p_recorded_at,
        p_data, p_metadata), 'UTF8'))
$$;

ALTER TABLE events ADD COLUMN hash bytea;
ALTER TABLE streams ADD COLUMN head_hash bytea;

-- Backfill an existing store, stream by stream in version order: a running aggregate over
-- each stream's events folds the chain. Stored events are immutable, so the guard trigger is
-- switched off for this one UPDATE only; the migration runs in one transaction holding
-- ACCESS EXCLUSIVE on events, so no other session ever sees the table unguarded.
CREATE FUNCTION talk_hash_chain_step(p_prev bytea, p_canonical text)
RETURNS bytea LANGUAGE sql STABLE AS $$
    SELECT sha256(p_prev || convert_to(p_canonical, 'UTF8'))
$$;
CREATE AGGREGATE talk_hash_chain(text) (
    SFUNC = talk_hash_chain_step,
    STYPE = bytea,
    INITCOND = '\x0000000000000000000000000000000000000000000000000000000000000000'
);

ALTER TABLE events DISABLE TRIGGER events_immutable;
UPDATE events e
   SET hash = chained.hash
  FROM (SELECT event_id,
               talk_hash_chain(talk_event_canonical(
                   event_id, stream_id, version, type, schema_version, recorded_at,
                   data, metadata)) OVER (PARTITION BY stream_id ORDER BY version) AS hash
          FROM events) AS chained
 WHERE e.event_id = chained.event_id;
ALTER TABLE events ENABLE TRIGGER events_immutable;

UPDATE streams s
   SET head_hash = head.hash
  FROM (SELECT DISTINCT ON (stream_id) stream_id, hash
          FROM events ORDER BY stream_id, version DESC) AS head
 WHERE s.stream_id = head.stream_id;
-- A stream row without any event cannot arise through talk_append_events; should one exist,
-- it gets the empty chain's hash and `talk events verify` reports it.
UPDATE streams SET head_hash = '\x0000000000000000000000000000000000000000000000000000000000000000'
 WHERE head_hash IS NULL;

DROP AGGREGATE talk_hash_chain(text);
DROP FUNCTION talk_hash_chain_step(bytea, text);

ALTER TABLE events ALTER COLUMN hash SET NOT NULL;
ALTER TABLE streams ALTER COLUMN head_hash SET NOT NULL;

-- The audit reads a talk's history: its chat stream (by stream_id) and the stream of every
-- message posted into it, found through this partial index (only MessagePosted rows).
CREATE INDEX events_messages_by_chat ON events ((data->>'chat_id'))
    WHERE type = 'MessagePosted';

-- Append events to one or more streams in one statement (one round trip, one transaction).
-- Same signature and semantics as in 0001; it now also chains each event's hash.
--
-- For stream i: p_expected[i] is the version the caller read; p_counts[i] is how many
-- events it gets. A count of 0 only checks the version and holds a share lock on the
-- stream's row until commit, so a concurrent append to that stream waits for this
-- transaction (and then fails its own check, having read an older version). The events
-- come as parallel arrays with their stream and version already numbered by the caller
-- (a stream's events in version order). A stream not at the expected version raises
-- SQLSTATE TK001 with the stream id as the DETAIL. Returns (position, tx_id) of each
-- appended event, in the order given.
--
-- Hashes: a new stream chains from 32 zero bytes; an existing stream's row is locked (the
-- lock its UPDATE takes) and read for its head hash first. Each stream's events are hashed
-- in the order given, then the stream row is written once with its new version and head.
CREATE OR REPLACE FUNCTION talk_append_events(
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
    zero     CONSTANT bytea := '\x0000000000000000000000000000000000000000000000000000000000000000';
    n_events CONSTANT integer := coalesce(array_length(p_event_ids, 1), 0);
    v_now    CONSTANT timestamptz := now();
    v_of     integer[];   -- v_of[j]: the index in p_streams of event j's stream
    v_first  integer[];   -- v_first[i] / v_last[i]: the range of event indexes of stream i
    v_last   integer[];
    v_hashes bytea[];     -- v_hashes[j]: the hash of event j
    v_head   bytea;
    i        integer := 1;
    j        integer;
BEGIN
    -- Which stream each event belongs to. The store sends each stream's events together, in
    -- the order of p_streams, so the guess "same stream as before, or the next one" holds
    -- and this is one pass; any other order still works through array_position.
    FOR j IN 1 .. n_events LOOP
        IF p_streams[i] IS DISTINCT FROM p_event_streams[j] THEN
            IF p_streams[i + 1] = p_event_streams[j] THEN
                i := i + 1;
            ELSE
                i := array_position(p_streams, p_event_streams[j]);
                IF i IS NULL THEN
                    RAISE EXCEPTION 'event % is for stream %, which is not listed',
                        p_event_ids[j], p_event_streams[j] USING ERRCODE = '22023';
                END IF;
            END IF;
        END IF;
        v_of[j] := i;
        IF v_first[i] IS NULL THEN
            v_first[i] := j;
        END IF;
        v_last[i] := j;
    END LOOP;

    FOR i IN 1 .. coalesce(array_length(p_streams, 1), 0) LOOP
        IF p_counts[i] = 0 THEN
            IF p_expected[i] = 0 THEN
                PERFORM 1 WHERE NOT EXISTS (SELECT 1 FROM streams WHERE stream_id = p_streams[i]);
            ELSE
                PERFORM 1 FROM streams
                 WHERE stream_id = p_streams[i] AND version = p_expected[i] FOR SHARE;
            END IF;
        ELSE
            IF p_expected[i] = 0 THEN
                v_head := zero;
            ELSE
                SELECT head_hash INTO v_head FROM streams
                 WHERE stream_id = p_streams[i] AND version = p_expected[i] FOR NO KEY UPDATE;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'stream % is not at version %', p_streams[i], p_expected[i]
                        USING ERRCODE = 'TK001', DETAIL = p_streams[i];
                END IF;
            END IF;
            FOR j IN coalesce(v_first[i], 1) .. coalesce(v_last[i], 0) LOOP
                IF v_of[j] = i THEN
                    v_head := talk_event_hash(v_head, p_event_ids[j], p_event_streams[j],
                        p_event_versions[j], p_types[j], p_schema_versions[j], v_now, p_data[j],
                        p_metadata);
                    v_hashes[j] := v_head;
                END IF;
            END LOOP;
            IF p_expected[i] = 0 THEN
                INSERT INTO streams (stream_id, version, head_hash)
                     VALUES (p_streams[i], p_counts[i], v_head)
                ON CONFLICT (stream_id) DO NOTHING;
            ELSE
                UPDATE streams SET version = version + p_counts[i], head_hash = v_head
                 WHERE stream_id = p_streams[i];
            END IF;
        END IF;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'stream % is not at version %', p_streams[i], p_expected[i]
                USING ERRCODE = 'TK001', DETAIL = p_streams[i];
        END IF;
    END LOOP;

    RETURN QUERY
    INSERT INTO events (event_id, stream_id, version, type, schema_version, data, metadata,
                        recorded_at, hash)
    SELECT e.event_id, e.stream_id, e.version, e.type, e.schema_version, e.data, p_metadata,
           v_now, e.hash
      FROM unnest(p_event_ids, p_event_streams, p_event_versions, p_types, p_schema_versions,
                  p_data, v_hashes)
           WITH ORDINALITY AS e(event_id, stream_id, version, type, schema_version, data, hash, ord)
     ORDER BY e.ord
    RETURNING position, tx_id;

    PERFORM pg_notify('talk_events', '');
END $$;
