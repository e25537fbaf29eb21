-- Partitioned projection (TALK_PROJECTOR_PARTITIONS): a talk's events belong to partition
-- talk_partition(chat_id, N); projector/partitioning.py computes the same in Python.
--
-- talk_partition: the first 28 bits of the md5 of the talk id's text, modulo N. Only
-- documented, immutable functions, so it can key an expression index; the projector creates
-- the index for its N (events_partition_order_<N>, on (talk_partition(data->>'chat_id', N),
-- tx_id, position)), which serves each partition's barrier read in the global order.
CREATE FUNCTION talk_partition(p_chat_id text, p_partitions integer) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN ('x' || substr(md5(p_chat_id), 1, 7))::bit(28)::integer % p_partitions;

-- A projection's checkpoint is one row per partition: (name, partition) of `partitions`.
-- The existing rows are partition 0 of 1, as they were.
ALTER TABLE projector_checkpoints
    ADD COLUMN partition integer NOT NULL DEFAULT 0 CHECK (partition >= 0),
    ADD COLUMN partitions integer NOT NULL DEFAULT 1 CHECK (partitions >= 1),
    ADD CHECK (partition < partitions);
ALTER TABLE projector_checkpoints DROP CONSTRAINT projector_checkpoints_pkey,
    ADD PRIMARY KEY (name, partition);

-- Each partition publishes its own outbox rows, in seq order.
ALTER TABLE outbox ADD COLUMN partition integer NOT NULL DEFAULT 0;
CREATE INDEX outbox_by_partition ON outbox (partition, seq);
