"""The hash chain of the event store, computed in Python exactly as the database does.

Each stored event carries ``hash = sha256(prev_hash || utf8(canonical text))`` where
``prev_hash`` is the hash of the event before it in its stream (32 zero bytes for the first)
and the canonical text is the envelope as a JSON array in Postgres' ``jsonb`` text form::

    ["<event_id>", "<stream_id>", <version>, "<type>", <schema_version>,
     <recorded_at in integer microseconds since the Unix epoch>, <data>, <metadata>]

(``talk_event_canonical`` in ``services/migrations/0004_hash_chain.sql``).

Why the ``jsonb`` text form: it is a deterministic function of the stored value (the
column is ``jsonb``; the client's spelling of the JSON is not kept), it is what any export
shows, and it is simple enough to reproduce here: object keys ordered by UTF-8 byte length,
then bytewise; ``", "`` and ``": "`` as separators; strings with only ``"``, ``\\`` and the
control characters escaped (as ``\\b \\f \\n \\r \\t`` or ``\\u00XX``), everything else as is;
numbers as ``numeric`` prints them (never an exponent, trailing zeros of the input kept, no
negative zero). :func:`jsonb_text` renders a parsed JSON value so; parse floats as
:class:`~decimal.Decimal` (``json.loads(text, parse_float=Decimal)``) to keep ``1.50``
distinct from ``1.5``.

``talk events verify`` hashes the data and metadata in the text form Postgres renders them
(``data::text``: exact and fast) and fills :data:`CANONICAL` with the other fields as the
walk receives them; :func:`event_hash_of_values` recomputes the same hash from parsed values,
e.g. from the lines of ``talk events export``, without any database.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

HASH_SIZE = 32
ZERO_HASH = bytes(HASH_SIZE)
"""What the first event of a stream chains to."""

CANONICAL = b'["%b", %b, %d, %b, %d, %d, %b, %b]'
"""The canonical text as a bytes template: event id (its text), stream id (a JSON string),
version, type (a JSON string), schema version, ``recorded_at`` in epoch microseconds, data and
metadata (their ``jsonb`` text); :func:`canonical_text` in one ``%`` (``talk events verify``)."""

PG_EPOCH_MICROS = 946_684_800_000_000
"""2000-01-01 UTC in Unix epoch microseconds: PostgreSQL's binary ``timestamptz`` counts
microseconds from there."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

_SHORT_ESCAPES = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                  '"': '\\"', "\\": "\\\\"}
_ESCAPES = str.maketrans({
    **{chr(c): f"\\u{c:04x}" for c in range(0x20)},
    **_SHORT_ESCAPES,
})


def json_string(text: str) -> str:
    """A JSON string as Postgres writes one (``escape_json``)."""
    return '"' + text.translate(_ESCAPES) + '"'


JSON_SPECIAL = bytes(range(0x20)) + b'"\\'
"""The bytes a JSON string escapes (everything else, UTF-8 included, stays as it is)."""


def json_string_bytes(raw: bytes) -> bytes:
    """:func:`json_string` of UTF-8 text, in UTF-8 (as is when nothing needs escaping)."""
    if len(raw.translate(None, JSON_SPECIAL)) == len(raw):
        return b'"' + raw + b'"'
    return json_string(raw.decode("utf-8")).encode("utf-8")


def _number(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"JSON has no {value}")
    if value.is_zero():
        value = abs(value)  # numeric has no negative zero
    return format(value, "f")


def _key_order(key: str) -> tuple[int, bytes]:
    raw = key.encode("utf-8")
    return len(raw), raw


def jsonb_text(value: Any) -> str:
    """``value`` (parsed JSON: dict, list, str, int, float, Decimal, bool, None) in the text
    form of Postgres' ``jsonb`` output."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return json_string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _number(Decimal(repr(value)))
    if isinstance(value, Decimal):
        return _number(value)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        return "{" + ", ".join(
            f"{json_string(key)}: {jsonb_text(value[key])}"
            for key in sorted(value, key=_key_order)
        ) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(jsonb_text(item) for item in value) + "]"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


def epoch_micros(moment: datetime) -> int:
    """Microseconds since the Unix epoch (a naive datetime is taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def canonical_text(event_id: UUID | str, stream_id: str, version: int, type_: str,
                   schema_version: int, recorded_at: datetime, data_text: str,
                   metadata_text: str) -> str:
    """The canonical text of an envelope whose data and metadata are given in their
    ``jsonb`` text form."""
    return (
        f'["{event_id}", {json_string(stream_id)}, {int(version)}, {json_string(type_)}, '
        f"{int(schema_version)}, {epoch_micros(recorded_at)}, {data_text}, {metadata_text}]"
    )


def chain(prev_hash: bytes, canonical: str) -> bytes:
    """One link: the hash of an event whose predecessor's hash is ``prev_hash``."""
    return hashlib.sha256(prev_hash + canonical.encode("utf-8")).digest()


def event_hash(prev_hash: bytes, event_id: UUID | str, stream_id: str, version: int,
               type_: str, schema_version: int, recorded_at: datetime, data_text: str,
               metadata_text: str) -> bytes:
    """The hash of an event given data and metadata in their ``jsonb`` text form."""
    return chain(prev_hash, canonical_text(event_id, stream_id, version, type_, schema_version,
                                           recorded_at, data_text, metadata_text))


def event_hash_of_values(prev_hash: bytes, event_id: UUID | str, stream_id: str, version: int,
                         type_: str, schema_version: int, recorded_at: datetime, data: Any,
                         metadata: Any) -> bytes:
    """The hash of an event given data and metadata as parsed JSON values."""
    return event_hash(prev_hash, event_id, stream_id, version, type_, schema_version,
                      recorded_at, jsonb_text(data), jsonb_text(metadata))
