"""Checking the hash chain of every stream, and exporting stream heads as a checkpoint.

The walk reads every event once, in ``(stream_id, version)`` order, in one read-only
snapshot, through one binary ``COPY ... TO STDOUT`` read a batch of rows at a time
(:mod:`events.copy_out`), and recomputes each hash in Python: memory stays constant
whatever the size of the store. For each stream it reports the first problem:

- a version missing or out of order (an event deleted, or two events swapped);
- a hash that does not match the recomputed one (an event changed, or the chain broken by
  a deleted or reordered predecessor);
- a stream row whose version or head hash differs from the last stored event (the tail
  deleted), or a stream row with no event at all;
- with a checkpoint (``talk events checkpoint``): a checkpointed head whose event is gone or
  whose recomputed hash differs (the stream rewritten since, hashes and all).

What the walk takes from the database, and what it computes itself: PostgreSQL sends each
event's columns as stored, through its built-in output functions only: data and metadata
in their ``jsonb`` text (the form the hash covers), the event id's text, and the rest in
binary (version, schema version, ``recorded_at`` as microseconds, the stored hash, the
stream id and type as raw text). The client writes the canonical text itself
(:data:`events.hashchain.CANONICAL`: layout, JSON strings, epoch microseconds), hashes,
chains and compares, so no SQL function stored in the database (``talk_event_canonical``,
``talk_event_hash``, which anyone allowed to run DDL could replace) takes part in the check.
A server whose own output functions lie could fool it, as it could fool any client.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from contextlib import aclosing
from dataclasses import dataclass
from itertools import chain

import psycopg
from psycopg.rows import tuple_row

from events.copy_out import copy_out
from events.hashchain import (
    CANONICAL,
    HASH_SIZE,
    JSON_SPECIAL,
    PG_EPOCH_MICROS,
    ZERO_HASH,
    json_string_bytes,
)
from services.db import Database

SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"
READ_ONLY = "SET TRANSACTION READ ONLY"  # allowed after the temporary table is filled
# The walk streams in index order (events by (stream_id, version), streams by id): no sort
# of the whole table into temporary files, and no JIT compilation for a plain scan.
WALK_SETTINGS = ("SET LOCAL client_encoding TO 'UTF8'", "SET LOCAL enable_sort TO off",
                 "SET LOCAL jit TO off")
ITERSIZE = 2000

_WALK = """COPY (
SELECT e.version, e.schema_version, e.recorded_at, e.event_id::text, e.hash,
       e.stream_id, e.type, e.data::text, e.metadata::text,{checkpoint_hash}
       CASE WHEN e.version = 1 THEN s.version END,
       CASE WHEN e.version = 1 THEN s.head_hash END
  FROM events e
  LEFT JOIN streams s ON s.stream_id = e.stream_id{checkpoint_join}
 ORDER BY e.stream_id, e.version
) TO STDOUT WITH (FORMAT binary)"""
# One row per event, in COPY's binary tuple format: a field count, then per field its length
# (-1: NULL) and its bytes. The first five fields have a fixed size when the row is as the
# schema says; the stream row's version and head hash come with version 1 only (the first
# row of an intact stream: the only one whose stream-row check matters).

_STREAM_ROWS = "SELECT count(*) FROM streams"
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

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_FIXED = struct.Struct(">hiqiiiqi36si32s")
"""Field count, then version (int8), schema version (int4), recorded_at (int8 microseconds
since 2000-01-01 UTC), event id (its 36 characters), hash (32 bytes), each after its length."""
_FIXED_LENGTHS = (8, 4, 8, 36, HASH_SIZE)
_LENGTH = struct.Struct(">i")
_HEAD = struct.Struct(">iqi32s")
"""The stream row's version and head hash, each after its length (on a stream's first row)."""
_NULL_PAIR = b"\xff" * 8  # the same two fields NULL, on the rows after a stream's first
_LINK = b"%b" + CANONICAL  # the previous hash, then the canonical text: what is hashed

Buffer = bytes | memoryview


def walk_statement(with_checkpoint: bool) -> str:
    if with_checkpoint:
        return _WALK.format(
            checkpoint_hash=" c.hash,",
            checkpoint_join=(f"\n  LEFT JOIN {_CHECKPOINT_TABLE} c"
                             " ON c.stream_id = e.stream_id AND c.version = e.version"))
    return _WALK.format(checkpoint_hash="", checkpoint_join="")


@dataclass(frozen=True, slots=True)
class Finding:
    """A problem found in a stream, at a version."""

    stream_id: str
    version: int
    problem: str

    def __str__(self) -> str:
        return f"stream {self.stream_id} version {self.version}: {self.problem}"


class BadCopy(RuntimeError):
    """The walk's COPY did not come in the binary format asked for."""


class ChainWalker:
    """Folds the rows of one walk (binary COPY tuples of :func:`walk_statement`, ordered by
    ``(stream_id, version)``) into findings, the first one of each stream. Pure: no I/O.

    :meth:`feed` is the hot loop of ``talk events verify``: a well-formed row costs two
    ``struct`` unpacks, a few slices, one ``%`` format and one SHA-256. A row that is not as
    the schema says (a NULL, a hash of another length) is decoded field by field instead
    and reported, never misread."""

    def __init__(self, with_checkpoint: bool = False) -> None:
        self.with_checkpoint = with_checkpoint
        self.events = 0
        self.streams = 0
        self.streams_with_row = 0  # walked streams whose row came along: all of them, if intact
        self.checkpoint_heads_seen = 0  # rows that are a checkpointed head
        self._fields = 12 if with_checkpoint else 11
        self._header = True
        self._stream: bytes | None = None  # the stream id, as stored (UTF-8)
        self._stream_json = b""
        self._expected = 1
        self._prev = ZERO_HASH
        self._broken = False
        self._head: tuple[int | None, bytes | None] = (None, None)
        self._types: dict[bytes, bytes] = {}  # each type's JSON string

    def feed(self, rows: Iterable[Buffer]) -> list[Finding]:
        """The findings these rows settle: each stream's last check when the next one starts,
        and each row's own."""
        findings: list[Finding] = []
        unpack, length, head_of = _FIXED.unpack_from, _LENGTH.unpack_from, _HEAD.unpack_from
        fixed_size, shape = _FIXED.size, (self._fields, *_FIXED_LENGTHS)
        with_checkpoint, types = self.with_checkpoint, self._types
        sha256 = hashlib.sha256
        stream, stream_json = self._stream, self._stream_json
        expected, prev, broken, head = self._expected, self._prev, self._broken, self._head
        events = streams = with_row = heads_seen = 0
        rows = iter(rows)
        if self._header:  # the first row of a binary COPY starts with the file header
            if (first := next(rows, None)) is None:
                return findings
            rows = chain([self._strip_header(first)], rows)
        for row in rows:
            row = bytes(row)  # a memoryview's slices and comparisons cost several times more
            unreadable = False
            try:
                nf, n1, version, n2, schema_version, n3, recorded, n4, event_id, n5, stored = \
                    unpack(row)
                if (nf, n1, n2, n3, n4, n5) != shape:
                    raise ValueError
                o = fixed_size
                (n1,) = length(row, o)
                sid = row[o + 4:o + 4 + n1]
                o += 4 + n1
                (n2,) = length(row, o)
                type_ = row[o + 4:o + 4 + n2]
                o += 4 + n2
                (n3,) = length(row, o)
                data = row[o + 4:o + 4 + n3]
                o += 4 + n3
                (n4,) = length(row, o)
                meta = row[o + 4:o + 4 + n4]
                o += 4 + n4
                if n1 | n2 | n3 | n4 < 0:  # a NULL (length -1) among them
                    raise ValueError
                checkpoint = None
                if with_checkpoint:
                    (n,) = length(row, o)
                    o += 4
                    if n >= 0:
                        checkpoint = row[o:o + n]
                        o += n
                if sid != stream:  # a stream's first row: with its stream row's head
                    n1, head_version, n2, head_hash = head_of(row, o)
                    if n1 != 8 or n2 != HASH_SIZE or len(row) != o + 48:
                        raise ValueError
                    new_head = (head_version, head_hash)
                elif row[o:] != _NULL_PAIR:
                    raise ValueError
            except (struct.error, ValueError):
                decoded = self._decode(row)
                if decoded is None:  # the trailer
                    continue
                (version, schema_version, recorded, event_id, stored, sid, type_, data, meta,
                 checkpoint, *new_head) = decoded
                unreadable = None in (schema_version, recorded, event_id, type_, data, meta)
            if checkpoint is not None:
                heads_seen += 1
            if sid != stream:
                if stream is not None and not broken and (
                        head[0] != expected - 1 or head[1] != prev):
                    findings.append(_stream_row_problem(stream, expected - 1, prev, head))
                streams += 1
                stream, expected, prev, broken, head = sid, 1, ZERO_HASH, False, new_head
                if head[0] is not None:
                    with_row += 1
                if sid is None:
                    stream_json = b"null"
                elif len(sid.translate(None, JSON_SPECIAL)) == len(sid):
                    stream_json = b'"' + sid + b'"'  # nothing to escape (json_string_bytes)
                else:
                    stream_json = json_string_bytes(sid)
            events += 1
            if broken:
                continue
            if version != expected or unreadable:
                broken = True
                findings.append(_unexpected(sid, expected, version))
                continue
            type_json = types.get(type_)
            if type_json is None:
                type_json = types[type_] = json_string_bytes(type_)
            computed = sha256(_LINK % (
                prev, event_id, stream_json, version, type_json, schema_version,
                recorded + PG_EPOCH_MICROS, data, meta)).digest()
            if stored != computed:
                broken = True
                findings.append(Finding(
                    _stream_id(sid), version,
                    f"hash does not match: stored {_hex(stored)}, recomputed {computed.hex()}"
                    f" (this event or its predecessor was changed, deleted or moved)"))
                continue
            if checkpoint is not None and checkpoint != computed:
                broken = True
                findings.append(Finding(
                    _stream_id(sid), version,
                    f"differs from the checkpoint: checkpointed {_hex(checkpoint)},"
                    f" now {computed.hex()} (the stream was rewritten from here or earlier)"))
                continue
            prev = computed
            expected += 1
        self._stream, self._stream_json = stream, stream_json
        self._expected, self._prev, self._broken, self._head = expected, prev, broken, head
        self.events += events
        self.streams += streams
        self.streams_with_row += with_row
        self.checkpoint_heads_seen += heads_seen
        return findings

    def finish(self) -> Finding | None:
        """Close the last stream: its row must name its last event and that event's hash."""
        stream, self._stream = self._stream, None
        if stream is None or self._broken:
            return None
        return _stream_row_problem(stream, self._expected - 1, self._prev, self._head)

    def _strip_header(self, row: Buffer) -> bytes:
        row = bytes(row)
        if not row.startswith(COPY_SIGNATURE) or len(row) < 19:
            raise BadCopy("the walk's COPY did not start with the binary COPY header")
        self._header = False
        return row[19 + int.from_bytes(row[15:19]):]

    def _decode(self, row: bytes) -> list | None:
        """A row that is not as the schema says, field by field: the fixed-size ones as
        numbers where they have their size, else None (as NULL is); None for the trailer."""
        (count,) = struct.unpack_from(">h", row)
        if count == -1:
            return None
        fields: list[bytes | None] = []
        o = 2
        for _ in range(count):
            (n,) = _LENGTH.unpack_from(row, o)
            o += 4
            fields.append(row[o:o + n] if n >= 0 else None)
            o += max(n, 0)
        if o != len(row) or count != self._fields:
            raise BadCopy(f"a row of the walk is not one of its tuples ({count} fields)")
        version, schema_version, recorded, event_id, stored, sid, type_, data, meta = fields[:9]
        checkpoint = fields[9] if self.with_checkpoint else None
        head_version, head_hash = fields[-2:]
        return [_int(version, 8), _int(schema_version, 4), _int(recorded, 8),
                event_id if event_id is not None and len(event_id) == 36 else None, stored,
                sid, type_, data, meta, checkpoint, _int(head_version, 8), head_hash]


def _stream_row_problem(stream: bytes, last: int, prev: bytes,
                        head: tuple[int | None, bytes | None]) -> Finding | None:
    """The check of a stream's row against its last event: version and hash."""
    head_version, head_hash = head
    if head_version is None:
        return Finding(_stream_id(stream), last, "the stream has events but no stream row")
    if head_version != last:
        if head_version > last:
            return Finding(_stream_id(stream), last + 1,
                           f"missing: the stream row's head is version {head_version}, "
                           f"the last stored event is version {last} (tail deleted)")
        return Finding(_stream_id(stream), head_version,
                       f"the stream row's head is version {head_version}, but events go "
                       f"up to version {last}")
    if head_hash is None or bytes(head_hash) != prev:
        return Finding(_stream_id(stream), last, f"the stream row's head hash "
                       f"{_hex(head_hash)} differs from the last event's {prev.hex()}")
    return None


def _int(value: bytes | None, size: int) -> int | None:
    return int.from_bytes(value, signed=True) if value is not None and len(value) == size else None


def _unexpected(sid: bytes | None, expected: int, version: int | None) -> Finding:
    if version is None:
        return Finding(_stream_id(sid), expected, "unreadable: the version is NULL")
    if version > expected:
        why = (f"missing: the next stored event is version {version}"
               f" (deleted, or the versions were renumbered)")
    elif version < expected:
        why = f"out of order: found version {version} after version {expected - 1}"
    else:
        why = "unreadable: a field the hash covers is NULL"
    return Finding(_stream_id(sid), expected, why)


def _stream_id(sid: bytes | None) -> str:
    return "(null)" if sid is None else sid.decode("utf-8", "replace")


def _hex(value: Buffer | None) -> str:
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
                           checkpoint: Iterable[Head] | None = None,
                           progress: Callable[[int], None] | None = None,
                           ) -> AsyncIterator[Finding]:
    """Walk the whole store and yield every finding as it is found; ``report`` gets the
    counts, ``progress`` the number of events of each batch walked. With ``checkpoint``, its
    heads are streamed into a temporary table first and every one is checked as well."""
    async with db.transaction("verify_hash_chain") as conn:
        await conn.execute(SNAPSHOT)
        if checkpoint is not None:
            report.checkpoint_heads = await _load_checkpoint(conn, checkpoint)
        await conn.execute(READ_ONLY)
        for setting in WALK_SETTINGS:
            await conn.execute(setting)
        walker = ChainWalker(with_checkpoint=checkpoint is not None)
        async with aclosing(copy_out(conn, walk_statement(checkpoint is not None))) as batches:
            async for batch in batches:
                walked = walker.events
                for finding in walker.feed(batch):
                    report.findings += 1
                    yield finding
                if progress is not None:
                    progress(walker.events - walked)
        finding = walker.finish()
        if finding is not None:
            report.findings += 1
            yield finding
        report.events, report.streams = walker.events, walker.streams
        # The walk met each stream row of a stream with events; only if some row was not met
        # can one have lost all its events, and only then is the anti-join worth its cost
        # (1.4 s on a store of 667,000 streams). Likewise for the checkpointed heads.
        cur = await conn.cursor(row_factory=tuple_row).execute(_STREAM_ROWS)
        if (await cur.fetchone())[0] != walker.streams_with_row:
            async for stream_id, version in _rows(conn, "verify_orphans",
                                                  _STREAMS_WITHOUT_EVENTS):
                report.findings += 1
                yield Finding(stream_id, 1, f"no event stored, but the stream row's head is "
                                            f"version {version} (every event deleted)")
        if checkpoint is not None and walker.checkpoint_heads_seen != report.checkpoint_heads:
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
