-- The append as one document, with one statement per stream on the common path; and the
-- refusal that the store's plain one-statement appends raise (events/append_statements.py).
--
-- talk_append(p_append jsonb) takes
--     {"streams": [[stream_id, expected_version, [[event_id, type, schema_version, data], ...]],
--                  ...],
--      "metadata": {...}}
-- and does what talk_append_events (0004, 0007) did: each stream at its expected version
-- (0 = new), or only checked and share-locked when it has no events; every event's hash
-- chained on its stream's head; all in the caller's transaction; one row (position, tx_id)
-- per event, in the order given. Events nest inside their stream, so the version of each is
-- its stream's expected version plus its place, and an event cannot name a stream that is
-- not listed.
--
-- Why: in a VOLATILE plpgsql function every SQL statement (and every expression calling a
-- STABLE function) takes a new snapshot and goes through the executor, and the old body ran
-- three to four of them plus per-element array work for the most common append, one event on
-- one stream. Here a stream with one event is one statement (stream row, hash and event
-- together); longer streams hash in a loop and insert their events in one statement. One
-- jsonb parameter also spares the client adapting ten arrays (bench/RESULTS.md has both
-- figures). Hashes are unchanged: the same talk_event_hash over the same values.

CREATE FUNCTION talk_append(p_append jsonb)
RETURNS TABLE (event_position bigint, event_tx_id xid8)
LANGUAGE plpgsql AS $$
DECLARE
    zero      CONSTANT bytea := '\x0000000000000000000000000000000000000000000000000000000000000000';
    v_now     CONSTANT timestamptz := now();
    v_meta    CONSTANT jsonb := p_append->'metadata';
    v_streams CONSTANT jsonb := p_append->'streams';
    v_stream   jsonb;
    v_id       text;
    v_expected bigint;
    v_events   jsonb;
    v_count    integer;
    v_event    jsonb;
    v_head     bytea;
    v_hashes   bytea[];
BEGIN
    IF jsonb_typeof(v_streams) IS DISTINCT FROM 'array'
       OR jsonb_typeof(v_meta) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION 'an append is {"streams": [...], "metadata": {...}}'
            USING ERRCODE = '22023';
    END IF;

    FOR i IN 0 .. jsonb_array_length(v_streams) - 1 LOOP
        v_stream := v_streams->i;
        v_id := v_stream->>0;
        v_expected := (v_stream->>1)::bigint;
        v_events := v_stream->2;
        v_count := jsonb_array_length(v_events);

        IF v_count = 0 THEN
            -- Only checked: absent, or at the expected version and share-locked until commit.
            IF v_expected = 0 THEN
                PERFORM 1 WHERE NOT EXISTS (SELECT 1 FROM streams WHERE stream_id = v_id);
            ELSE
                PERFORM 1 FROM streams
                 WHERE stream_id = v_id AND version = v_expected FOR SHARE;
            END IF;

        ELSIF v_count = 1 AND v_expected = 0 THEN
            -- A new stream with one event. The stream row goes first: if the stream exists
            -- (or a concurrent append is creating it) nothing is inserted and FOUND is false.
            v_event := v_events->0;
            RETURN QUERY
            WITH created AS (
                INSERT INTO streams (stream_id, version, head_hash)
                VALUES (v_id, 1, talk_event_hash(zero, (v_event->>0)::uuid, v_id, 1,
                            v_event->>1, (v_event->>2)::integer, v_now, v_event->3, v_meta))
                ON CONFLICT (stream_id) DO NOTHING
                RETURNING head_hash
            )
            INSERT INTO events (event_id, stream_id, version, type, schema_version, data,
                                metadata, recorded_at, hash)
            SELECT (v_event->>0)::uuid, v_id, 1, v_event->>1, (v_event->>2)::integer,
                   v_event->3, v_meta, v_now, created.head_hash
              FROM created
            RETURNING position, tx_id;

        ELSIF v_count = 1 THEN
            -- One event on an existing stream: locked at the expected version, hashed on its
            -- head, moved on, and the event stored, in one statement.
            v_event := v_events->0;
            RETURN QUERY
            WITH held AS (
                SELECT head_hash FROM streams
                 WHERE stream_id = v_id AND version = v_expected
                   FOR NO KEY UPDATE
            ), moved AS (
                UPDATE streams
                   SET version = v_expected + 1,
                       head_hash = talk_event_hash(held.head_hash, (v_event->>0)::uuid, v_id,
                           v_expected + 1, v_event->>1, (v_event->>2)::integer, v_now,
                           v_event->3, v_meta)
                  FROM held
                 WHERE streams.stream_id = v_id
                RETURNING streams.head_hash
            )
            INSERT INTO events (event_id, stream_id, version, type, schema_version, data,
                                metadata, recorded_at, hash)
            SELECT (v_event->>0)::uuid, v_id, v_expected + 1, v_event->>1,
                   (v_event->>2)::integer, v_event->3, v_meta, v_now, moved.head_hash
              FROM moved
            RETURNING position, tx_id;

        ELSE
            -- Several events: the stream's head (locked), the chain hashed in order, the
            -- stream row, then the events in one statement.
            IF v_expected = 0 THEN
                v_head := zero;
            ELSE
                SELECT head_hash INTO v_head FROM streams
                 WHERE stream_id = v_id AND version = v_expected FOR NO KEY UPDATE;
                IF NOT FOUND THEN
                    RAISE EXCEPTION 'stream % is not at version %', v_id, v_expected
                        USING ERRCODE = 'TK001', DETAIL = v_id;
                END IF;
            END IF;
            v_hashes := '{}';
            FOR k IN 1 .. v_count LOOP
                v_event := v_events->(k - 1);
                v_head := talk_event_hash(v_head, (v_event->>0)::uuid, v_id, v_expected + k,
                    v_event->>1, (v_event->>2)::integer, v_now, v_event->3, v_meta);
                v_hashes[k] := v_head;
            END LOOP;
            IF v_expected = 0 THEN
                INSERT INTO streams (stream_id, version, head_hash)
                     VALUES (v_id, v_count, v_head)
                ON CONFLICT (stream_id) DO NOTHING;
            ELSE
                UPDATE streams SET version = v_expected + v_count, head_hash = v_head
                 WHERE stream_id = v_id;
            END IF;
            IF FOUND THEN
                RETURN QUERY
                INSERT INTO events (event_id, stream_id, version, type, schema_version, data,
                                    metadata, recorded_at, hash)
                SELECT (e.value->>0)::uuid, v_id, v_expected + e.ord, e.value->>1,
                       (e.value->>2)::integer, e.value->3, v_meta, v_now,
                       v_hashes[e.ord::integer]
                  FROM jsonb_array_elements(v_events) WITH ORDINALITY AS e(value, ord)
                 ORDER BY e.ord
                RETURNING position, tx_id;
            END IF;
        END IF;

        IF NOT FOUND THEN
            RAISE EXCEPTION 'stream % is not at version %', v_id, v_expected
                USING ERRCODE = 'TK001', DETAIL = v_id;
        END IF;
    END LOOP;
END $$;

-- The array form of 0004 stays callable, now a translation into the document. Each
-- stream's events must follow one another in the order of p_streams, numbered from the
-- stream's expected version, as the store always sent them; anything else is refused rather
-- than reordered.
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
    v_streams jsonb := '[]';
    v_events  jsonb;
    j         integer := 0;
BEGIN
    FOR i IN 1 .. coalesce(array_length(p_streams, 1), 0) LOOP
        v_events := '[]';
        FOR k IN 1 .. p_counts[i] LOOP
            j := j + 1;
            IF p_event_streams[j] IS DISTINCT FROM p_streams[i]
               OR p_event_versions[j] IS DISTINCT FROM p_expected[i] + k THEN
                RAISE EXCEPTION 'event % (stream %, version %) is out of place',
                    p_event_ids[j], p_event_streams[j], p_event_versions[j]
                    USING ERRCODE = '22023';
            END IF;
            v_events := v_events || jsonb_build_array(jsonb_build_array(
                p_event_ids[j], p_types[j], p_schema_versions[j], p_data[j]));
        END LOOP;
        v_streams := v_streams || jsonb_build_array(jsonb_build_array(
            p_streams[i], p_expected[i], v_events));
    END LOOP;
    IF j <> coalesce(array_length(p_event_ids, 1), 0) THEN
        RAISE EXCEPTION 'the counts do not add up to the events given' USING ERRCODE = '22023';
    END IF;
    RETURN QUERY SELECT * FROM talk_append(
        jsonb_build_object('streams', v_streams, 'metadata', p_metadata));
END $$;
