"""Exporting the event history: every event in the global order with its full envelope.

One ``COPY (SELECT ...) TO STDOUT`` in a read-only snapshot, in ``(tx_id, position)`` order
below the xmin barrier (as ``read_all``: only committed events, never one that a
transaction still in flight would commit before; the barrier comes from the statement's own
snapshot). PostgreSQL renders each output line, and the lines go to ``out`` as they come, a
batch of rows at a time (:mod:`events.copy_out`): memory stays flat whatever the size of the
history, and the client does next to nothing per event.

NDJSON: one object per line, ``position, tx_id, event_id, stream_id, version, type,
schema_version, recorded_at, hash`` (hex) as ``json.dumps`` writes them (no spaces), then
``data`` and ``metadata`` in their stored ``jsonb`` text form (the form the hash covers), so
an export line holds everything needed to recompute its event's hash
(:func:`events.hashchain.event_hash_of_values`). The line is one text field of a binary COPY:
its bytes as they are, after a 6-byte field header; JSON text never holds a raw line break.

CSV: :data:`CSV_COLUMNS` with a header row, in PostgreSQL's CSV (fields quoted when they hold
a comma, a quote or a line break, as Python's ``csv`` does), rows ending with ``\\r\\n``; an
absent or empty metadata field is an empty cell.

Filters: ``customer_id`` (the metadata's tenant), ``chat_id`` (the talk's events: its chat
stream and its messages' streams, as every catalogue event names its ``chat_id``), and
``since``/``until`` (a position or a time, both bounds inclusive).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO
from uuid import UUID

from events.copy_out import Row, copy_out
from services.db import Database

if TYPE_CHECKING:
    from events.point_in_time import Moment

FORMATS = ("ndjson", "csv")
SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
# The bytes are written as they come; no JIT compilation for a plain scan (it costs more than
# it saves here, and a large history's estimate would ask for it).
SETTINGS = ("SET LOCAL client_encoding TO 'UTF8'", "SET LOCAL jit TO off")
WRITE_SIZE = 1 << 20  # bytes gathered before a write to ``out``

_EVENTS = """
  FROM events
 WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot()){filters}
 ORDER BY events.tx_id, events.position
"""
# (Qualified: in the export's SELECT the order must walk the (tx_id, position) index.)

_NDJSON = """COPY (
SELECT '{"position":' || position || ',"tx_id":' || tx_id || ',"event_id":"' || event_id
       || '","stream_id":' || to_json(stream_id) || ',"version":' || version
       || ',"type":' || to_json(type) || ',"schema_version":' || schema_version
       || ',"recorded_at":"' || to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')
       || '","hash":"' || encode(hash, 'hex') || '","data":' || data
       || ',"metadata":' || metadata || '}'
""" + _EVENTS + ") TO STDOUT WITH (FORMAT binary)"

CSV_COLUMNS = ("position", "tx_id", "event_id", "stream_id", "version", "type",
               "schema_version", "recorded_at", "customer_id", "actor_type", "actor_id",
               "request_id", "data", "metadata", "hash")

_CSV = """COPY (
SELECT position, tx_id, event_id, stream_id, version, type, schema_version,
       to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') AS recorded_at,
       nullif(metadata->>'customer_id', '') AS customer_id,
       nullif(metadata->'actor'->>'type', '') AS actor_type,
       nullif(metadata->'actor'->>'id', '') AS actor_id,
       nullif(metadata->>'request_id', '') AS request_id,
       data::text AS data, metadata::text AS metadata, encode(hash, 'hex') AS hash
""" + _EVENTS + ") TO STDOUT WITH (FORMAT csv, HEADER true)"

BINARY_HEADER = 19  # bytes: signature, flags, extension length (then the extension, if any)
_FIELD_HEADER = 6  # bytes before a row's one field: the field count, then the field's length
_NULL_ROW = b"\x00\x01\xff\xff\xff\xff"  # one field, NULL


class BadExport(RuntimeError):
    """A stored event cannot be exported as it is (a column the schema says is NOT NULL is
    NULL: see ``talk events verify``)."""


@dataclass(frozen=True, slots=True)
class ExportFilters:
    customer_id: UUID | None = None
    chat_id: UUID | None = None
    since: Moment | None = None
    until: Moment | None = None

    def sql(self) -> tuple[str, dict[str, Any]]:
        clauses, params = [], {}
        if self.customer_id is not None:
            clauses.append("metadata->>'customer_id' = %(customer_id)s")
            params["customer_id"] = str(self.customer_id)
        if self.chat_id is not None:
            clauses.append("data->>'chat_id' = %(chat_id)s")
            params["chat_id"] = str(self.chat_id)
        if self.since is not None or self.until is not None:
            # Only here: the point-in-time module brings the domain, the catalogue and the query
            # API's folds along (~50 ms of imports), which an export without bounds skips.
            from events.point_in_time import AtPosition, AtTime

            for name, moment, op in (("since", self.since, ">="), ("until", self.until, "<=")):
                if isinstance(moment, AtPosition):
                    clauses.append(f"position {op} %({name})s")
                    params[name] = moment.position
                elif isinstance(moment, AtTime):
                    clauses.append(f"recorded_at {op} %({name})s")
                    params[name] = moment.time
        return "".join(f"\n   AND {c}" for c in clauses), params


def export_statement(filters: ExportFilters, fmt: str = "ndjson") -> tuple[str, dict[str, Any]]:
    """The ``COPY`` that writes the export, and its parameters."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    where, params = filters.sql()
    return (_NDJSON if fmt == "ndjson" else _CSV).replace("{filters}", where), params


class NdjsonLines:
    """Binary COPY rows of one text field to the lines they hold. The COPY's first row
    starts with the file header and its last one is the two-byte trailer."""

    def __init__(self) -> None:
        self._first = True
        self.count = 0

    def __call__(self, rows: list[Row]) -> bytes:
        if self._first:
            self._first = False
            head = bytes(rows[0])
            rows[0] = memoryview(head)[BINARY_HEADER + int.from_bytes(head[15:19]):]
        if len(rows[-1]) == 2:  # the trailer: only ever the last row
            rows.pop()
        if min(map(len, rows), default=_FIELD_HEADER + 1) <= _FIELD_HEADER:
            if any(row == _NULL_ROW for row in rows):
                raise BadExport("a stored event has a NULL column; `talk events verify` "
                                "reports where")
        self.count += len(rows)
        lines = [row[_FIELD_HEADER:] for row in rows]
        lines.append(b"")
        return b"\n".join(lines)


class CsvLines:
    """PostgreSQL's CSV rows with ``\\r\\n`` line ends, as RFC 4180 and Python's ``csv``
    write them (a line break inside a quoted field stays as it is: only each row's last
    byte, the row's end, changes). The first row is the header."""

    def __init__(self) -> None:
        self.count = -1

    def __call__(self, rows: list[Row]) -> bytes:
        self.count += len(rows)
        return b"\r\n".join([row[:-1] for row in rows]) + b"\r\n"


def _write(write: Callable[[bytes], Any], lines: NdjsonLines | CsvLines, rows: list[Row],
           progress: Callable[[int], None] | None) -> None:
    before = lines.count
    write(lines(rows))
    if progress is not None:
        progress(lines.count - max(before, 0))


async def export_events(db: Database, out: BinaryIO, filters: ExportFilters,
                        fmt: str = "ndjson",
                        progress: Callable[[int], None] | None = None) -> int:
    """Write the events that pass ``filters`` to ``out``; returns how many. ``progress``
    gets the number of events of each write."""
    statement, params = export_statement(filters, fmt)
    lines: NdjsonLines | CsvLines = NdjsonLines() if fmt == "ndjson" else CsvLines()
    write: Callable[[bytes], Any] = out.write
    pending: list[Row] = []
    size = 0
    try:
        async with db.transaction("export_events") as conn:
            await conn.execute(SNAPSHOT)
            for setting in SETTINGS:
                await conn.execute(setting)
            async with aclosing(copy_out(conn, statement, params)) as batches:
                async for batch in batches:
                    pending += batch
                    size += sum(map(len, batch))
                    if size >= WRITE_SIZE:
                        _write(write, lines, pending, progress)
                        pending.clear()
                        size = 0
            if pending:
                _write(write, lines, pending, progress)
    finally:
        out.flush()
    return lines.count
