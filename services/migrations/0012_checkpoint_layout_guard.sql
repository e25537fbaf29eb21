-- A projector batch saves its checkpoint only into the layout it read it from: the UPDATE
-- matches (name, partition, partitions), and when it matches no row (`talk projections
-- rebuild` laid the checkpoints out in another number of partitions meanwhile) the batch
-- fails with SQLSTATE TK003 and rolls back, instead of writing into the new layout.
CREATE FUNCTION talk_checkpoint_layout_changed(p_name text, p_partitions integer)
    RETURNS integer LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the checkpoints of % are no longer laid out in % partition(s)',
        p_name, p_partitions USING ERRCODE = 'TK003';
END $$;
