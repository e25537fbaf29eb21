"""Exporting the event history: every event in the global order with its full envelope.

One ``COPY (SELECT ...) TO STDOUT`` in a read-only snapshot, in ``(tx_id, position)`` order
below the xmin barrier (as ``read_all``: only committed events, never one that a
transaction still in flight would commit before; the barrier comes from the statement's own
snapshot). PostgreSQL renders each output line and the bytes go straight to ``out``, a batch
of rows at a time (:mod:`events.copy_out`): memory stays flat whatever the size of the
history, and the client does almost nothing per event.

NDJSON: one object per line, ``position, tx_id, event_id, stream_id, version, type,
schema_version, recorded_at, hash`` (hex), then ``data`` and ``metadata`` in their stored
``jsonb`` text form (the form the hash covers), so an export line holds everything needed to
recompute its event's hash (:func:`events.hashchain.event_hash_of_values`). The line is made
of JSON texts only (numbers, ``to_json`` strings, ``jsonb`` output), which never hold a
control character, so COPY's text format escapes nothing in it but the backslash, doubled;
undoing that is the only work left here.

CSV: :data:`CSV_COLUMNS` with a header row, in PostgreSQL's CSV (fields quoted when they hold
a comma, a quote or a line break; rows end with ``\\n``); an absent or empty metadata field
is an empty cell.

Filters: ``customer_id`` (the metadata's tenant), ``chat_id`` (the talk's events: its chat
stream and its messages' streams, as every catalogue event names its ``chat_id``), and
``since``/``until`` (a position or a time, both bounds inclusive).
"""

from __future__ import annotations

from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, BinaryIO
from uuid import UUID

from events.copy_out import copy_out
from events.point_in_time import AtPosition, AtTime, Moment
from services.db import Database

FORMATS = ("ndjson", "csv")
SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
UTF8 = "SET LOCAL client_encoding TO 'UTF8'"  # the bytes are written as they come
WRITE_SIZE = 1 << 20  # bytes gathered before a write to ``out``

_EVENTS = """
  FROM events
 WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot()){filters}
 ORDER BY events.tx_id, events.position
"""
# (Qualified: in the export's SELECT the order must walk the (tx_id, position) index.)

# The NDJSON line, as json.dumps would write the head (no spaces) and the stored jsonb text
# of data and metadata after it.
_NDJSON = """COPY (
SELECT '{"position":' || position || ',"tx_id":' || tx_id || ',"event_id":"' || event_id
       || '","stream_id":' || to_json(stream_id) || ',"version":' || version
       || ',"type":' || to_json(type) || ',"schema_version":' || schema_version
       || ',"recorded_at":"' || to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')
       || '","hash":"' || encode(hash, 'hex') || '","data":' || data
       || ',"metadata":' || metadata || '}'
""" + _EVENTS + ") TO STDOUT"

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


def _unescape(rows: bytes) -> bytes:
    """COPY text rows back to the lines they hold: ``\\\\`` is ``\\`` (see the module doc).
    Rows come whole (one per message), so a pair never straddles two chunks."""
    return rows.replace(b"\\\\", b"\\")


def _as_is(rows: bytes) -> bytes:
    return rows


async def export_events(db: Database, out: BinaryIO, filters: ExportFilters,
                        fmt: str = "ndjson") -> int:
    """Write the events that pass ``filters`` to ``out``; returns how many."""
    statement, params = export_statement(filters, fmt)
    decode = _unescape if fmt == "ndjson" else _as_is
    count = size = 0
    pending: list[memoryview] = []
    try:
        async with db.transaction("export_events") as conn:
            await conn.execute(SNAPSHOT)
            await conn.execute(UTF8)
            async with aclosing(copy_out(conn, statement, params)) as batches:
                async for batch in batches:
                    count += len(batch)
                    pending += batch
                    size += sum(map(len, batch))
                    if size >= WRITE_SIZE:
                        out.write(decode(b"".join(pending)))
                        pending.clear()
                        size = 0
            if pending:
                out.write(decode(b"".join(pending)))
    finally:
        out.flush()
    return count - 1 if fmt == "csv" else count  # the CSV header is a row of the COPY
