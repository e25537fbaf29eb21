"""A record of every committed batch of the partitioned projection, to prove per partition
that no event is skipped and none applied twice, whichever process applied it and however
the read tables are written (event by event or set-based).

Triggers in the test's own database record, inside the batch's transaction (so a batch that
rolls back, a crash, leaves nothing): each checkpoint move of the live projection
(partition, from, to) and each outbox row the batch inserts (one per event projected, in the
same transaction as its read-table writes). Then, per partition:

- the committed batches form one chain from the start to the partition's checkpoint, each
  starting where the one before ended (two batches from one place: a range applied twice);
- each batch inserted exactly the partition's events of its range ``(from, to]`` as the
  store holds them now, no other (an event missing: a read that passed a transaction still
  open, or another partition's read; an event twice: applied twice), into its partition's
  outbox."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import psycopg
from psycopg.rows import dict_row

from events.envelope import START, Checkpoint
from projector.partitioning import partition_expression

_SETUP = """
CREATE SCHEMA test_batches;
CREATE TABLE test_batches.moves (
    tx xid8 NOT NULL DEFAULT pg_current_xact_id(), partition integer, partitions integer,
    from_tx bigint, from_pos bigint, to_tx bigint, to_pos bigint);
CREATE TABLE test_batches.outbox (
    tx xid8 NOT NULL DEFAULT pg_current_xact_id(), partition integer, message_id uuid,
    chat_id uuid);
CREATE FUNCTION test_batches.move() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO test_batches.moves (partition, partitions, from_tx, from_pos, to_tx, to_pos)
  VALUES (NEW.partition, NEW.partitions, OLD.last_tx::text::bigint, OLD.last_pos,
          NEW.last_tx::text::bigint, NEW.last_pos);
  RETURN NULL;
END $$;
CREATE TRIGGER test_batches AFTER UPDATE OF last_tx, last_pos ON projector_checkpoints
  FOR EACH ROW WHEN (NEW.name = 'read_model' AND OLD.partition = NEW.partition
                     AND (OLD.last_tx, OLD.last_pos) IS DISTINCT FROM (NEW.last_tx, NEW.last_pos))
  EXECUTE FUNCTION test_batches.move();
CREATE FUNCTION test_batches.outboxed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO test_batches.outbox (partition, message_id, chat_id)
  VALUES (NEW.partition, NEW.message_id, NEW.chat_id);
  RETURN NULL;
END $$;
CREATE TRIGGER test_batches AFTER INSERT ON outbox
  FOR EACH ROW EXECUTE FUNCTION test_batches.outboxed();
"""


async def install(url: str) -> None:
    """Record every committed batch in the database at ``url`` (a database of the test's
    own)."""
    async with await psycopg.AsyncConnection.connect(url) as conn:
        await conn.execute(_SETUP)
        await conn.commit()


@dataclass
class Batch:
    tx: int
    partition: int
    start: Checkpoint
    end: Checkpoint
    outboxed: Counter = field(default_factory=Counter)  # (outbox partition, event id)


async def problems(url: str, partitions: int) -> tuple[list[str], dict[int, int]]:
    """What is wrong with the committed batches of the live projection (nothing when every
    event of each partition was applied once, in a chain of batches up to its checkpoint),
    and how many batches each partition committed."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        moves = await (await conn.execute(
            "SELECT tx::text::bigint AS tx, partition, partitions, from_tx, from_pos, to_tx,"
            " to_pos FROM test_batches.moves")).fetchall()
        outboxed = await (await conn.execute(
            "SELECT tx::text::bigint AS tx, partition, message_id::text AS id"
            " FROM test_batches.outbox")).fetchall()
        events = await (await conn.execute(
            f"SELECT {partition_expression(partitions)} AS p, tx_id::text::bigint AS tx,"
            " position, event_id::text AS id FROM events ORDER BY tx_id, position")).fetchall()
        final = await (await conn.execute(
            "SELECT partition, last_tx::text::bigint AS tx, last_pos FROM projector_checkpoints"
            " WHERE name = 'read_model'")).fetchall()
    out: list[str] = []
    batches: dict[int, Batch] = {}
    for m in moves:
        if m["partitions"] != partitions:
            out.append(f"a checkpoint of {m['partitions']} partitions moved: {m}")
        if m["tx"] in batches:
            out.append(f"transaction {m['tx']} moved two checkpoints")
        batches[m["tx"]] = Batch(m["tx"], m["partition"], Checkpoint(m["from_tx"], m["from_pos"]),
                                 Checkpoint(m["to_tx"], m["to_pos"]))
    for row in outboxed:
        batch = batches.get(row["tx"])
        if batch is None:
            out.append(f"event {row['id']} outboxed by a transaction that moved no checkpoint")
        else:
            batch.outboxed[(row["partition"], row["id"])] += 1

    by_partition: dict[int, list[Batch]] = defaultdict(list)
    for batch in batches.values():
        by_partition[batch.partition].append(batch)
    ends = {r["partition"]: Checkpoint(r["tx"], r["last_pos"]) for r in final}
    for p in range(partitions):
        out += _chain_problems(p, by_partition[p], ends[p])

    # Each batch's events: the partition's events of its range, as the store holds them.
    of_partition: dict[int, list[dict]] = defaultdict(list)
    for e in events:
        of_partition[e["p"]].append(e)
    applied: Counter[str] = Counter()
    for batch in batches.values():
        want = Counter((batch.partition, e["id"]) for e in of_partition[batch.partition]
                       if batch.start < Checkpoint(e["tx"], e["position"]) <= batch.end)
        if batch.outboxed != want:
            missing, extra = want - batch.outboxed, batch.outboxed - want
            out.append(f"partition {batch.partition}'s batch ({batch.start}, {batch.end}]:"
                       f" {sum(missing.values())} of its events not applied"
                       f" {sorted(missing)[:3]}, {sum(extra.values())} applied that are not"
                       f" its own or twice {sorted(extra)[:3]}")
        applied.update(i for _, i in batch.outboxed.elements())
    for e in events:
        if applied[e["id"]] != 1:
            out.append(f"event {e['id']} (partition {e['p']}, {e['tx']}:{e['position']})"
                       f" applied {applied[e['id']]} times")
    return out[:20], {p: len(b) for p, b in sorted(by_partition.items())}


def _chain_problems(partition: int, batches: list[Batch], end: Checkpoint) -> list[str]:
    """The batches of one partition must link from START to ``end``, each once."""
    starting: dict[Checkpoint, list[Batch]] = defaultdict(list)
    for batch in batches:
        starting[batch.start].append(batch)
    out = [f"partition {partition}: {len(b)} batches start at {cp} (a range applied again)"
           for cp, b in starting.items() if len(b) > 1]
    at, walked = START, 0
    while starting.get(at):
        batch = starting[at][0]
        if not batch.end > batch.start:
            out.append(f"partition {partition}: a batch moved back from {batch.start} to {batch.end}")
            break
        at, walked = batch.end, walked + 1
    if at != end:
        out.append(f"partition {partition}: its batches lead to {at}, its checkpoint is at {end}")
    if walked != len(batches) and not out:
        out.append(f"partition {partition}: {len(batches) - walked} batches off the chain")
    return out
