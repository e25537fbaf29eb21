-- Talk 1.1, lifecycle and read state: the talk's status and counters, each participant's read
-- marker, each message's place in its talk and its mentions (projector/read_schema.py holds
-- the same shape for a rebuild; new columns come last, so the rm_* views are replaced in
-- place).
--
-- rm_chats:        status ('active' | 'closed'); message_seq (messages posted into it);
--                  normal_count (normal messages); last_message_id, tm_last_message.
-- rm_messages:     seq (its place among the talk's messages, in the projection's order);
--                  n (normal messages of the talk up to and including it); mentions.
-- rm_participants: read_seq, read_n (the seq and n of the last message read); the marked
--                  message and when (last_read_message_id, tm_read).
-- unread = rm_chats.normal_count - read_n - (deleted normal messages with n > read_n):
-- posting writes the message, its talk and its author's marker, never the other members.
--
-- The existing rows are filled from the history's order: each message's seq and n, each
-- talk's counters and last message; each participant's marker is set to the talk's newest
-- message (nothing that existed before this migration counts as unread; `talk projections
-- rebuild` derives the markers from the history instead).
-- The audit reads a talk's history with its read markers: their streams, like its messages'.
CREATE INDEX events_reads_by_chat ON events ((data->>'chat_id')) WHERE type = 'ChatRead';

DO $$
DECLARE
    s text := 'read_v' || (SELECT version FROM read_model_version);
BEGIN
    EXECUTE format('ALTER TABLE %I.rm_chats'
        ' ADD COLUMN status text NOT NULL DEFAULT ''active'','
        ' ADD COLUMN message_seq bigint NOT NULL DEFAULT 0,'
        ' ADD COLUMN normal_count bigint NOT NULL DEFAULT 0,'
        ' ADD COLUMN last_message_id uuid,'
        ' ADD COLUMN tm_last_message timestamptz', s);
    EXECUTE format('ALTER TABLE %I.rm_participants'
        ' ADD COLUMN read_seq bigint NOT NULL DEFAULT 0,'
        ' ADD COLUMN read_n bigint NOT NULL DEFAULT 0,'
        ' ADD COLUMN last_read_message_id uuid,'
        ' ADD COLUMN tm_read timestamptz', s);
    EXECUTE format('ALTER TABLE %I.rm_messages'
        ' ADD COLUMN seq bigint NOT NULL DEFAULT 0,'
        ' ADD COLUMN n bigint NOT NULL DEFAULT 0,'
        ' ADD COLUMN mentions jsonb NOT NULL DEFAULT ''[]''', s);

    EXECUTE format(
        'UPDATE %1$I.rm_messages m SET seq = o.seq, n = o.n FROM ('
        '  SELECT (data->>''message_id'')::uuid AS id,'
        '         row_number() OVER w AS seq,'
        '         count(*) FILTER (WHERE data->>''type'' = ''normal'') OVER w AS n'
        '    FROM events WHERE type = ''MessagePosted'''
        '  WINDOW w AS (PARTITION BY data->>''chat_id'' ORDER BY tx_id, position)) o'
        ' WHERE m.id = o.id', s);
    EXECUTE format(
        'UPDATE %1$I.rm_chats c SET message_seq = l.seq, normal_count = l.n,'
        '       last_message_id = l.id, tm_last_message = l.tm_create FROM ('
        '  SELECT DISTINCT ON (chat_id) chat_id, seq, n, id, tm_create FROM %1$I.rm_messages'
        '   ORDER BY chat_id, seq DESC) l'
        ' WHERE c.id = l.chat_id', s);
    EXECUTE format(
        'UPDATE %1$I.rm_participants p SET read_seq = c.message_seq, read_n = c.normal_count'
        '  FROM %1$I.rm_chats c WHERE c.id = p.chat_id', s);

    EXECUTE format('CREATE INDEX rm_messages_deleted_by_n ON %I.rm_messages (chat_id, n)'
                   ' WHERE tm_delete IS NOT NULL AND type = ''normal''', s);
    EXECUTE format('CREATE INDEX rm_messages_mentioning_by_n ON %I.rm_messages (chat_id, n)'
                   ' WHERE mentions <> ''[]''::jsonb AND tm_delete IS NULL', s);

    EXECUTE format('CREATE OR REPLACE VIEW rm_chats AS SELECT id, customer_id, type, name,'
        ' detail, member_count, tm_create, tm_update, tm_delete, status, message_seq,'
        ' normal_count, last_message_id, tm_last_message FROM %I.rm_chats', s);
    EXECUTE format('CREATE OR REPLACE VIEW rm_participants AS SELECT id, customer_id, chat_id,'
        ' owner_type, owner_id, tm_joined, read_seq, read_n, last_read_message_id, tm_read'
        ' FROM %I.rm_participants', s);
    EXECUTE format('CREATE OR REPLACE VIEW rm_messages AS SELECT id, customer_id, chat_id,'
        ' parent_id, owner_type, owner_id, type, text, medias, reactions, tm_create,'
        ' tm_update, tm_delete, seq, n, mentions FROM %I.rm_messages', s);
END $$;
