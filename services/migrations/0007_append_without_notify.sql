-- Appends no longer NOTIFY inside their own transaction.
--
-- A transaction that has sent a NOTIFY commits behind one server-wide lock held through its
-- WAL flush, so a NOTIFY in every append serialised all writers' commits (at concurrency 32
-- it cut appends to about a tenth; see bench/RESULTS.md). The wake-up is now sent after
-- commit, coalesced, by events.notifier.CommitNotifier in each writing process; readers poll
-- anyway, so a lost wake-up costs at most one poll interval. The function is otherwise the
-- one 0004 defines.

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

END $$;
