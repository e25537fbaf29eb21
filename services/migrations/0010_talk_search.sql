-- Talk 1.1, search, threads, activity order and tm_update (projector/read_schema.py holds the
-- same shape for a rebuild; new columns come last, so the rm_* views are replaced in place).
--
-- Search: the GIN index rm_messages_search over talk_search_vector(customer_id, text), an
-- expression index (no column: every writer of rm_messages keeps it, the projector, a
-- replay's COPY and this backfill alike). Nothing outside PostgreSQL's core is needed (the
-- embedded server of `talk up` has no contrib modules, so no unaccent):
--   talk_search_fold(text): NFKD, combining marks dropped, lower(); then what lower() leaves
--     under the C locale (the embedded server's): Greek and Cyrillic capitals, letters with a
--     stroke or bar (ø ł đ ħ ŧ ı), ß æ œ spelled out; each step only when the text holds
--     such a letter (translate() is slow): 'Łódź ÉTÉ Straße' -> 'lodz ete strasse';
--   talk_search_vector(customer, text): the 'simple' tsvector of the folded text, each lexeme
--     prefixed with the customer's id (32 hex digits), so the index's entries of one customer
--     are its own range: a search, prefixes included, reads the caller's customer's entries
--     only, however many customers share the table;
--   talk_search_query(customer, q): every word of q, folded and parsed the same way, as a
--     prefix match of that customer's lexemes, all ANDed ('hel wor' -> c||'hel':* & c||'wor':*);
--     NULL when q holds no word.
-- A deleted message's text is '' (no lexeme); an edit replaces the text, so the index holds
-- the current words only.
--
-- Threads: rm_messages.reply_count (direct replies) and tm_last_reply (the newest one's
-- tm_create), kept by the projector when a reply is posted.
-- Activity: rm_chats_by_activity orders a customer's talks by coalesce(tm_last_message,
-- tm_create) (tm_last_message comes with 0009).
-- tm_update: set when a talk, a participant change or a message is created and by every
-- change (talk: rename, join, leave, close, reopen, delete; message: edit, delete, reaction
-- added or removed); the existing rows get the time of their stream's last event the
-- projection has applied.

CREATE FUNCTION talk_search_caps(s text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN s ~ '[Α-ΩЀ-Я]'
                THEN translate(s, 'ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩЂЄЅІЈЉЊЋ'
                                  'ЏАБВГДЕЖЗИКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ',
                                  'αβγδεζηθικλμνξοπρστυφχψωђєѕіјљњћ'
                                  'џабвгдежзиклмнопрстуфхцчшщъыьэюя')
                ELSE s END;

CREATE FUNCTION talk_search_letters(s text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN CASE WHEN s ~ '[ØøŁłĐđĦħŦŧıÐÞŊςßæÆœŒ]'
                THEN replace(replace(replace(replace(replace(translate(s,
                         'ØøŁłĐđĦħŦŧıÐÞŊς', 'oollddhhttiðþŋσ'),
                         'ß', 'ss'), 'æ', 'ae'), 'Æ', 'ae'), 'œ', 'oe'), 'Œ', 'oe')
                ELSE s END;

CREATE FUNCTION talk_search_fold(t text) RETURNS text
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    RETURN talk_search_letters(talk_search_caps(lower(regexp_replace(normalize(t, NFKD),
        '[\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]',
        '', 'g'))));

-- COST: 50 to 70 us a call (priced so, the planner reaches for the index rather than
-- evaluating this on each of an agent's messages; priced far higher, a plan's total cost
-- passes jit_above_cost and JIT compilation costs 300 ms a search).
CREATE FUNCTION talk_search_vector(customer uuid, t text) RETURNS tsvector
    LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE COST 1000 AS $$
DECLARE
    words tsvector := to_tsvector('simple', talk_search_fold(t));
    p text := replace(customer::text, '-', '');
BEGIN
    IF words = ''::tsvector THEN
        RETURN words;
    END IF;
    -- Lexemes never hold a control character: U+001F separates them here.
    RETURN array_to_tsvector(string_to_array(
        p || array_to_string(tsvector_to_array(words), E'\x1f' || p), E'\x1f'));
END $$;

CREATE FUNCTION talk_search_query(customer uuid, q text) RETURNS tsquery
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT string_agg('''' || replace(replace(replace(customer::text, '-', '') || lexeme,
                                                      '\', '\\'), '''', '''''') || ''':*',
                              ' & ')::tsquery
              FROM unnest(to_tsvector('simple', talk_search_fold(q))));

DO $$
DECLARE
    s text := 'read_v' || (SELECT version FROM read_model_version);
    t text;
BEGIN
    EXECUTE format('ALTER TABLE %I.rm_messages'
        ' ADD COLUMN reply_count integer NOT NULL DEFAULT 0,'
        ' ADD COLUMN tm_last_reply timestamptz', s);

    -- The replies projected after their parent (seq: the place in the talk, in the order of
    -- the projection), as the projector counts them: all of them, since a reply is decided on
    -- its committed parent.
    EXECUTE format(
        'UPDATE %1$I.rm_messages m SET reply_count = r.n, tm_last_reply = r.last FROM ('
        '  SELECT p.id, count(*) AS n, max(c.tm_create) AS last'
        '    FROM %1$I.rm_messages c JOIN %1$I.rm_messages p ON p.id = c.parent_id'
        '   WHERE c.seq > p.seq GROUP BY p.id) r'
        ' WHERE m.id = r.id', s);

    -- tm_update: the time of the last event of each talk's and message's stream that the
    -- projection has applied (each event type carries one tm_* field).
    EXECUTE format(
        'UPDATE %1$I.rm_chats c SET tm_update = l.tm FROM ('
        '  SELECT DISTINCT ON (e.stream_id) substr(e.stream_id, 6)::uuid AS id,'
        '         (SELECT value FROM jsonb_each_text(e.data) WHERE key LIKE ''tm\_%%'''
        '           LIMIT 1)::timestamptz AS tm'
        '    FROM events e, projector_checkpoints cp'
        '   WHERE cp.name = ''read_model'' AND e.stream_id LIKE ''chat-%%'''
        '     AND (e.tx_id, e.position) <= (cp.last_tx, cp.last_pos)'
        '   ORDER BY e.stream_id, e.version DESC) l'
        ' WHERE c.id = l.id', s);
    EXECUTE format(
        'UPDATE %1$I.rm_messages m SET tm_update = l.tm FROM ('
        '  SELECT DISTINCT ON (e.stream_id) substr(e.stream_id, 9)::uuid AS id,'
        '         (SELECT value FROM jsonb_each_text(e.data) WHERE key LIKE ''tm\_%%'''
        '           LIMIT 1)::timestamptz AS tm'
        '    FROM events e, projector_checkpoints cp'
        '   WHERE cp.name = ''read_model'' AND e.stream_id LIKE ''message-%%'''
        '     AND (e.tx_id, e.position) <= (cp.last_tx, cp.last_pos)'
        '   ORDER BY e.stream_id, e.version DESC) l'
        ' WHERE m.id = l.id', s);

    EXECUTE format('CREATE INDEX rm_messages_search ON %I.rm_messages'
                   ' USING gin (talk_search_vector(customer_id, text))', s);
    EXECUTE format('CREATE INDEX rm_chats_by_activity ON %I.rm_chats'
                   ' (customer_id, (coalesce(tm_last_message, tm_create)) DESC, id DESC)', s);

    -- The view lists the table's columns in order (those of 0009 included).
    SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) INTO t
      FROM pg_attribute
     WHERE attrelid = format('%I.rm_messages', s)::regclass AND attnum > 0 AND NOT attisdropped;
    EXECUTE format('CREATE OR REPLACE VIEW rm_messages AS SELECT %s FROM %I.rm_messages', t, s);
END $$;
