"""Checking the hash chain of every stream, and exporting stream heads as a checkpoint.

The walk reads every event once, in ``(stream_id, version)`` order through a server-side
cursor in one read-only snapshot, and recomputes each hash in Python
(:mod:`events.hashchain`): memory stays constant whatever the size of the store. For each
stream it reports the first problem:

- a version missing or out of order (an event deleted, or two events swapped);
- a hash that does not match the recomputed one (an event changed, or the chain broken by
  a deleted or reordered predecessor);
- a stream row whose version or head hash differs from the last stored event (the tail
  deleted), or a stream row with no event at all;
- with a checkpoint (``talk events checkpoint``): a checkpointed head whose event is gone or
  whose recomputed hash differs (the stream rewritten since, hashes and all).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import tuple_row

from events.hashchain import HASH_SIZE, ZERO_HASH, event_hash
from services.db import Database

SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
READ_ONLY = "SET TRANSACTION READ ONLY"  # allowed after the temporary table is filled
ITERSIZE = 2000

_WALK = """
SELECT e.stream_id, e.version, e.event_id, e.type, e.schema_version, e.recorded_at,
       e.data::text, e.metadata::text, e.hash, s.version, s.head_hash, {checkpoint_hash}
  FROM events e
  LEFT JOIN streams s ON s.stream_id = e.stream_id
  {checkpoint_join}
 ORDER BY e.stream_id, e.version
"""

_STREAMS_WITHOUT_EVENTS = """
SELECT s.stream_id, s.version FROM streams s
 WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.stream_id = s.stream_id)
 ORDER BY s.stream_id
"""

_CHECKPOINT_TABLE = "talk_verify_checkpoint"
_CHECKPOINT_MISSING = f"""
SELECT c.stream_id, c.version FROM {_CHECKPOINT_TABLE} c
 WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.stream_id = c.stream_id AND e.version = c.version)
 ORDER BY c.stream_id, c.version
"""

_HEADS = "SELECT stream_id, version, head_hash FROM streams ORDER BY stream_id"


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem found in a stream, at a version."""

    stream_id: str
    version: int
    problem: str

    def __str__(self) -> str:
        return f"stream {self.stream_id} version {self.version}: {self.problem}"


@dataclass(frozen=True, slots=True)
class ChainRow:
    """One event of the walk, with its stream row and its checkpointed hash if any."""

    stream_id: str
    version: int
    event_id: Any
    type: str
    schema_version: int
    recorded_at: Any
    data_text: str
    metadata_text: str
    stored_hash: bytes | None
    head_version: int | None
    head_hash: bytes | None
    checkpoint_hash: bytes | None = None


class ChainWalker:
    """Folds the rows of one walk, ordered by ``(stream_id, version)``, into findings (the
    first one of each stream). Pure: no I/O."""

    def __init__(self) -> None:
        self.events = 0
        self.streams = 0
        self.checkpoint_heads_seen = 0
        self._stream: str | None = None
        self._expected = 1
        self._prev = ZERO_HASH
        self._broken = False
        self._head: tuple[int | None, bytes | None] = (None, None)

    def feed(self, row: ChainRow) -> list[Finding]:
        """The findings this row settles: the previous stream's last check when a new stream
        starts, and this row's own."""
        findings = []
        if row.stream_id != self._stream:
            if (ended := self.finish()) is not None:
                findings.append(ended)
            self._start(row)
        self.events += 1
        if not self._broken and (problem := self._check(row)) is not None:
            self._broken = True
            findings.append(problem)
        return findings

    def _start(self, row: ChainRow) -> None:
        self.streams += 1
        self._stream = row.stream_id
        self._expected = 1
        self._prev = ZERO_HASH
        self._broken = False
        self._head = (row.head_version, row.head_hash)

    def _check(self, row: ChainRow) -> Finding | None:
        if row.version != self._expected:
            if row.version > self._expected:
                why = (f"missing: the next stored event is version {row.version}"
                       f" (deleted, or the versions were renumbered)")
            else:
                why = f"out of order: found version {row.version} after version {self._expected - 1}"
            return Finding(row.stream_id, self._expected, why)
        computed = event_hash(self._prev, row.event_id, row.stream_id, row.version, row.type,
                              row.schema_version, row.recorded_at, row.data_text,
                              row.metadata_text)
        if row.stored_hash is None or bytes(row.stored_hash) != computed:
            return Finding(row.stream_id, row.version,
                           f"hash does not match: stored {_hex(row.stored_hash)}, "
                           f"recomputed {computed.hex()} (this event or its predecessor "
                           f"was changed, deleted or moved)")
        if row.checkpoint_hash is not None:
            self.checkpoint_heads_seen += 1
            if bytes(row.checkpoint_hash) != computed:
                return Finding(row.stream_id, row.version,
                               f"differs from the checkpoint: checkpointed "
                               f"{bytes(row.checkpoint_hash).hex()}, now {computed.hex()} "
                               f"(the stream was rewritten from here or earlier)")
        self._prev = computed
        self._expected += 1
        return None

    def finish(self) -> Finding | None:
        """Close the current stream: its row must name its last event and that event's hash."""
        if self._stream is None or self._broken:
            return None
        last = self._expected - 1
        head_version, head_hash = self._head
        stream, self._stream = self._stream, None
        if head_version is None:
            return Finding(stream, last, "the stream has events but no stream row")
        if head_version != last:
            if head_version > last:
                return Finding(stream, last + 1,
                               f"missing: the stream row's head is version {head_version}, "
                               f"the last stored event is version {last} (tail deleted)")
            return Finding(stream, head_version,
                           f"the stream row's head is version {head_version}, but events go "
                           f"up to version {last}")
        if head_hash is None or bytes(head_hash) != self._prev:
            return Finding(stream, last, f"the stream row's head hash {_hex(head_hash)} differs "
                           f"from the last event's {self._prev.hex()}")
        return None


def _hex(value: bytes | None) -> str:
    return bytes(value).hex() if value is not None else "none"


@dataclass(frozen=True, slots=True)
class Head:
    stream_id: str
    version: int
    hash: bytes

    def to_json(self) -> str:
        return json.dumps({"stream_id": self.stream_id, "version": self.version,
                           "hash": self.hash.hex()}, ensure_ascii=False)


class BadCheckpoint(ValueError):
    """The checkpoint file is not what ``talk events checkpoint`` writes."""


def parse_checkpoint(lines: Iterable[str]) -> Iterator[Head]:
    """The heads of a checkpoint file, one NDJSON line each (blank lines skipped)."""
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            head = Head(str(item["stream_id"]), int(item["version"]), bytes.fromhex(item["hash"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise BadCheckpoint(f"line {n}: not a checkpoint head ({exc})") from None
        if len(head.hash) != HASH_SIZE or head.version < 1:
            raise BadCheckpoint(f"line {n}: not a checkpoint head (bad hash or version)")
        yield head


@dataclass
class VerifyReport:
    events: int = 0
    streams: int = 0
    findings: int = 0
    checkpoint_heads: int = 0


async def run_verify_chain(db: Database, report: VerifyReport,
                           checkpoint: Iterable[Head] | None = None) -> AsyncIterator[Finding]:
    """Walk the whole store and yield every finding as it is found; ``report`` gets the
    counts. With ``checkpoint``, its heads are streamed into a temporary table first and
    every one is checked as well."""
    async with db.transaction("verify_hash_chain") as conn:
        await conn.execute(SNAPSHOT)
        if checkpoint is not None:
            report.checkpoint_heads = await _load_checkpoint(conn, checkpoint)
        await conn.execute(READ_ONLY)
        walker = ChainWalker()
        if checkpoint is not None:
            sql = _WALK.format(
                checkpoint_hash="c.hash",
                checkpoint_join=(f"LEFT JOIN {_CHECKPOINT_TABLE} c"
                                 " ON c.stream_id = e.stream_id AND c.version = e.version"))
        else:
            sql = _WALK.format(checkpoint_hash="NULL::bytea", checkpoint_join="")
        async for row in _rows(conn, "verify_walk", sql):
            for finding in walker.feed(ChainRow(*row)):
                report.findings += 1
                yield finding
        finding = walker.finish()
        if finding is not None:
            report.findings += 1
            yield finding
        report.events, report.streams = walker.events, walker.streams
        async for stream_id, version in _rows(conn, "verify_orphans", _STREAMS_WITHOUT_EVENTS):
            report.findings += 1
            yield Finding(stream_id, 1, f"no event stored, but the stream row's head is "
                                        f"version {version} (every event deleted)")
        if checkpoint is not None:
            async for stream_id, version in _rows(conn, "verify_checkpoint", _CHECKPOINT_MISSING):
                report.findings += 1
                yield Finding(stream_id, version,
                              "the checkpointed head is gone (deleted, or the stream renumbered)")


async def _rows(conn: psycopg.AsyncConnection, name: str, sql: str) -> AsyncIterator[tuple]:
    async with conn.cursor(name=name, row_factory=tuple_row) as cur:
        cur.itersize = ITERSIZE
        await cur.execute(sql)
        async for row in cur:
            yield row


async def _load_checkpoint(conn: psycopg.AsyncConnection, heads: Iterable[Head]) -> int:
    await conn.execute(
        f"CREATE TEMP TABLE {_CHECKPOINT_TABLE} (stream_id text NOT NULL, version bigint NOT NULL,"
        " hash bytea NOT NULL, PRIMARY KEY (stream_id, version)) ON COMMIT DROP")
    count = 0
    try:
        async with conn.cursor().copy(
                f"COPY {_CHECKPOINT_TABLE} (stream_id, version, hash) FROM STDIN") as copy:
            for head in heads:
                await copy.write_row((head.stream_id, head.version, head.hash))
                count += 1
    except psycopg.errors.UniqueViolation:
        raise BadCheckpoint("a stream head is listed twice") from None
    await conn.execute(f"ANALYZE {_CHECKPOINT_TABLE}")
    return count


async def stream_heads(db: Database) -> AsyncIterator[Head]:
    """Every stream's head (version and hash), in one snapshot, by stream id."""
    async with db.transaction("export_stream_heads") as conn:
        await conn.execute(SNAPSHOT)
        await conn.execute(READ_ONLY)
        async for stream_id, version, head_hash in _rows(conn, "stream_heads", _HEADS):
            yield Head(stream_id, version, bytes(head_hash))
