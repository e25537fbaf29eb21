"""The hash chain in Python: the jsonb text form, the canonical text, the hash (against vectors
computed by the migration's SQL functions), and the chain walker's findings."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID

import pytest

from events.hashchain import (
    CANONICAL,
    PG_EPOCH_MICROS,
    ZERO_HASH,
    canonical_text,
    epoch_micros,
    event_hash,
    event_hash_of_values,
    json_string,
    json_string_bytes,
    jsonb_text,
)
from events.verify import (
    COPY_SIGNATURE,
    BadCheckpoint,
    BadCopy,
    ChainWalker,
    Head,
    parse_checkpoint,
)

# --- the jsonb text form (expected strings are what Postgres 15 prints for ``x::jsonb::text``)


def as_postgres_reads(text: str):
    return json.loads(text, parse_float=Decimal)


@pytest.mark.parametrize(("given", "expected"), [
    ('{"b":1,"aa":2,"a":[1,2,{"z":null}], "é": "x", "ab":true}',
     '{"a": [1, 2, {"z": null}], "b": 1, "aa": 2, "ab": true, "é": "x"}'),
    ('{"ä":1,"z":2,"zz":3}', '{"z": 2, "zz": 3, "ä": 1}'),  # ä is two bytes long
    ('{"a":{"b":[{"c":"d"}]}}', '{"a": {"b": [{"c": "d"}]}}'),
    ("{}", "{}"), ("[]", "[]"), ('""', '""'), ("null", "null"), ("false", "false"),
    ('{"x": [], "y": {}}', '{"x": [], "y": {}}'),
])
def test_objects_arrays_and_key_order(given, expected):
    assert jsonb_text(as_postgres_reads(given)) == expected


def test_string_escapes_as_postgres_writes_them():
    value = 'a"b\\c\n\t\r\b\f\x01\x1f\x7f é ☃ 😀 \u2028 /'
    assert json_string(value) == '"a\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f\x7f é ☃ 😀 \u2028 /"'
    # json.loads of Postgres' output gives back the same text form
    pg = '{"s": "a\\"b\\\\c\\n\\t\\r\\b\\f\\u0001\\u001f\x7f é ☃ 😀 \u2028 /"}'
    assert jsonb_text(json.loads(pg)) == pg


@pytest.mark.parametrize(("given", "expected"), [
    # as numeric prints what jsonb stored from these inputs
    ("1.0", "1.0"), ("100", "100"), ("0.0015", "0.0015"), ("0", "0"), ("0.0", "0.0"),
    ("12345678901234567890123", "12345678901234567890123"), ("0.1", "0.1"),
    ("0.0000001", "0.0000001"), ("1.00", "1.00"), ("15.0", "15.0"), ("-2.50", "-2.50"),
])
def test_numbers_round_trip_postgres_text(given, expected):
    assert jsonb_text(as_postgres_reads(given)) == expected


@pytest.mark.parametrize(("value", "expected"), [
    # a Python value as Postgres stores it after json.dumps (psycopg's Jsonb) and numeric_in
    (1e2, "100.0"), (1e20, "100000000000000000000"), (1.5e-3, "0.0015"), (-0.0, "0.0"),
    (0.1 + 0.2, "0.30000000000000004"), (Decimal("1E+2"), "100"), (Decimal("-0"), "0"),
    (True, "true"), (7, "7"),
])
def test_python_numbers(value, expected):
    assert jsonb_text(value) == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), Decimal("NaN")])
def test_non_json_numbers_are_refused(value):
    with pytest.raises(ValueError):
        jsonb_text(value)


def test_non_json_values_are_refused():
    with pytest.raises(TypeError):
        jsonb_text({"when": datetime.now(UTC)})


# --- the canonical text and the hash ---------------------------------------------------------

EVENT_ID = UUID("00000000-0000-4000-8000-000000000001")
RECORDED = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
DATA = '{"name":"é \\"q\\"\\n","n":1.50,"chat_id":"x","z":[true,null,{}]}'
METADATA = '{"actor":{"id":null,"type":"system"},"customer_id":"c"}'
# SELECT talk_event_canonical(...) / encode(talk_event_hash('\x00...', ...), 'hex') with these
SQL_CANONICAL = ('["00000000-0000-4000-8000-000000000001", "chat-x", 2, "ChatUpdated", 1, '
                 '1714979289123456, {"n": 1.50, "z": [true, null, {}], "name": "é \\"q\\"\\n", '
                 '"chat_id": "x"}, {"actor": {"id": null, "type": "system"}, "customer_id": "c"}]')
SQL_HASH = "42ac6d46aacac8b71301df57732e548d0ec63b35d8728542ffd7265c74b99037"


def test_canonical_text_and_hash_match_the_sql_functions():
    data, metadata = as_postgres_reads(DATA), as_postgres_reads(METADATA)
    text = canonical_text(EVENT_ID, "chat-x", 2, "ChatUpdated", 1, RECORDED,
                          jsonb_text(data), jsonb_text(metadata))
    assert text == SQL_CANONICAL
    assert event_hash_of_values(ZERO_HASH, EVENT_ID, "chat-x", 2, "ChatUpdated", 1, RECORDED,
                                data, metadata).hex() == SQL_HASH


def test_the_previous_hash_and_every_field_matter():
    base = (EVENT_ID, "chat-x", 2, "ChatUpdated", 1, RECORDED, "{}", "{}")
    reference = event_hash(ZERO_HASH, *base)
    assert event_hash(b"\x01" * 32, *base) != reference
    for i, changed in enumerate([UUID(int=5), "chat-y", 3, "ChatDeleted", 2,
                                 RECORDED + timedelta(microseconds=1), '{"a": 1}', '{"b": 1}']):
        fields = list(base)
        fields[i] = changed
        assert event_hash(ZERO_HASH, *fields) != reference, f"field {i} is not covered"


def test_sql_vector_before_the_epoch():
    # SELECT encode(talk_event_hash(sha256('a'), ..., '1969-12-31 23:59:59.999999+00', '{}', '{}'), 'hex')
    import hashlib

    prev = hashlib.sha256(b"a").digest()
    moment = datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert epoch_micros(moment) == -1
    assert event_hash(prev, EVENT_ID, "chat-x", 2, "ChatUpdated", 1, moment, "{}", "{}").hex() == (
        "6b40debf585538fd643d290141e568bfaccdebb01d7246111e9c693dd316bef6")


def test_epoch_micros_is_exact_and_zone_independent():
    moment = datetime(2024, 5, 6, 9, 8, 9, 123456, tzinfo=timezone(timedelta(hours=2)))
    assert epoch_micros(moment) == 1714979289123456
    assert epoch_micros(datetime(2024, 5, 6, 7, 8, 9, 123456)) == 1714979289123456  # naive: UTC


# --- the walk's canonical bytes --------------------------------------------------------------

TRICKY_TEXTS = ["chat-x", 'q"uote', "back\\slash", "line\nbreak\ttab\x01\x1f", "é ☃ 😀 \u2028",
                "del\x7f", ""]


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_json_string_bytes_is_json_string_in_utf8(text):
    assert json_string_bytes(text.encode()) == json_string(text).encode()


@pytest.mark.parametrize("stream", TRICKY_TEXTS)
def test_the_walks_template_is_the_canonical_text(stream):
    for moment in (RECORDED, datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)):
        filled = CANONICAL % (str(EVENT_ID).encode(), json_string_bytes(stream.encode()), 2,
                              json_string_bytes(b"ChatUpdated"), 1,
                              pg_micros(moment) + PG_EPOCH_MICROS, DATA.encode(),
                              METADATA.encode())
        assert filled == canonical_text(EVENT_ID, stream, 2, "ChatUpdated", 1, moment, DATA,
                                        METADATA).encode()


# --- the walker ------------------------------------------------------------------------------
# It folds the rows of the walk's binary COPY; these tests build those rows (the COPY's own
# layout is exercised against PostgreSQL by the tamper tests).


@dataclass
class Stored:
    """An event as the walk reads it, with its stream row's head on its stream's first row."""

    stream: str
    version: int | None
    data: str | None
    hash: bytes | None
    event_id: UUID = EVENT_ID
    type: str = "ChatUpdated"
    head: tuple[int, bytes] | None = None  # None: the stream has no row
    checkpoint: bytes | None = None


def pg_micros(moment: datetime) -> int:
    return epoch_micros(moment) - PG_EPOCH_MICROS


def field(value: bytes | None) -> bytes:
    return b"\xff\xff\xff\xff" if value is None else struct.pack(">i", len(value)) + value


def copy_row(e: Stored, with_checkpoint: bool = False) -> bytes:
    """One tuple of the walk's COPY (binary format), as :func:`walk_statement` selects it."""
    first = e.version == 1
    fields = [
        None if e.version is None else struct.pack(">q", e.version), struct.pack(">i", 1),
        struct.pack(">q", pg_micros(RECORDED)), str(e.event_id).encode(), e.hash,
        e.stream.encode(), e.type.encode(), None if e.data is None else e.data.encode(),
        b"{}",
        *([e.checkpoint] if with_checkpoint else []),
        struct.pack(">q", e.head[0]) if first and e.head else None,
        e.head[1] if first and e.head else None,
    ]
    return struct.pack(">h", len(fields)) + b"".join(field(f) for f in fields)


def copy_rows(events: list[Stored], with_checkpoint: bool = False) -> list[bytes]:
    """The messages of a whole walk: the header comes with the first row, the trailer last."""
    header = COPY_SIGNATURE + struct.pack(">ii", 0, 0)
    rows = [copy_row(e, with_checkpoint) for e in events] + [b"\xff\xff"]
    rows[0] = header + rows[0]
    return rows


def chain_rows(stream: str, count: int, head: int | None = None) -> list[Stored]:
    """A stream of ``count`` events chained as the store does; its row's head is the last
    event (or version ``head``)."""
    rows, prev = [], ZERO_HASH
    for version in range(1, count + 1):
        data = f'{{"n": {version}}}'
        event_id = UUID(int=version)
        h = event_hash(prev, event_id, stream, version, "ChatUpdated", 1, RECORDED, data, "{}")
        rows.append(Stored(stream, version, data, h, event_id))
        prev = h
    for row in rows:
        row.head = (count if head is None else head, prev)
    return rows


def walk(rows: list[Stored], *, batch: int = 1000, with_checkpoint: bool = False) -> list[str]:
    walker = ChainWalker(with_checkpoint=with_checkpoint)
    messages = copy_rows(rows, with_checkpoint)
    found = [f for i in range(0, len(messages), batch)
             for f in walker.feed(messages[i:i + batch])]
    if (last := walker.finish()) is not None:
        found.append(last)
    return [f"{f.stream_id}@{f.version}: {f.problem}" for f in found]


def test_a_clean_store_has_no_findings():
    rows = chain_rows("a", 3) + chain_rows("b", 1)
    walker = ChainWalker()
    assert walker.feed(copy_rows(rows)) == []
    assert walker.finish() is None
    assert (walker.events, walker.streams, walker.streams_with_row) == (4, 2, 2)


def test_streams_met_without_their_row_are_counted_out():
    """What lets the walk skip looking for stream rows that lost every event."""
    a, b, c = chain_rows("a", 2), chain_rows("b", 2), chain_rows("c", 3)
    for row in b:
        row.head = None  # no stream row
    del c[0]  # version 1 gone: its row is not read (the stream is reported as it is)
    walker = ChainWalker()
    walker.feed(copy_rows(a + b + c))
    assert (walker.streams, walker.streams_with_row) == (3, 1)


def test_batches_of_any_size_give_the_same_findings():
    rows = chain_rows("a", 3) + chain_rows("b", 4)[:3] + chain_rows("c", 2)
    rows[1].data = '{"n": 99}'
    expected = walk(rows)
    assert [f.split(":")[0] for f in expected] == ["a@2", "b@4"]
    for size in (1, 2, 3, 5):
        assert walk(rows, batch=size) == expected


def test_stream_ids_are_hashed_as_json_strings():
    stream = 'chat "é" \\ ☃'
    rows = chain_rows(stream, 2)
    assert walk(rows) == []
    rows[1].data = '{"n": 3}'
    assert walk(rows)[0].startswith(f"{stream}@2: hash does not match")


def test_changed_data_is_found_at_its_version():
    rows = chain_rows("a", 4)
    rows[1].data = '{"n": 99}'
    [found] = walk(rows + chain_rows("b", 2))
    assert found.startswith("a@2: hash does not match")


def test_a_deleted_event_is_found():
    rows = chain_rows("a", 4)
    del rows[2]
    [found] = walk(rows)
    assert found.startswith("a@3: missing")


def test_a_renumbered_stream_breaks_the_link():
    rows = chain_rows("a", 4)
    del rows[1]  # version 2 deleted, 3 and 4 renumbered to 2 and 3
    for row in rows[1:]:
        row.version -= 1
    [found] = walk(rows)
    assert found.startswith("a@2: hash does not match")


def test_two_events_out_of_order():
    rows = chain_rows("a", 3)
    rows[1].version = 1  # a second version 1 (the unique constraint dropped)
    [found] = walk(rows)
    assert found.startswith("a@2: out of order")


def test_a_deleted_tail_is_found_through_the_stream_row():
    rows = chain_rows("a", 4)[:3]  # the stream row still says version 4
    [found] = walk(rows)
    assert found.startswith("a@4: missing")


def test_a_stream_without_a_row_and_a_wrong_head_hash():
    rows = chain_rows("a", 2)
    for row in rows:
        row.head = None
    [found] = walk(rows)
    assert "no stream row" in found
    rows = chain_rows("a", 2)
    for row in rows:
        row.head = (2, b"\x00" * 32)
    [found] = walk(rows)
    assert found.startswith("a@2: the stream row's head hash")


def test_findings_of_two_streams_in_a_row_are_both_reported():
    a = chain_rows("a", 2)[:1]  # tail deleted: settled when stream b starts
    b = chain_rows("b", 2)
    b[0].hash = b"\x07" * 32
    assert [f.split(":")[0] for f in walk(a + b)] == ["a@2", "b@1"]


def test_a_checkpointed_head_that_differs_is_found():
    rows = chain_rows("a", 3)
    rows[1].checkpoint = b"\x01" * 32
    [found] = walk(rows, with_checkpoint=True)
    assert found.startswith("a@2: differs from the checkpoint")
    rows[1].checkpoint = rows[1].hash
    walker = ChainWalker(with_checkpoint=True)
    assert walker.feed(copy_rows(rows, with_checkpoint=True)) == []
    assert walker.checkpoint_heads_seen == 1


@pytest.mark.parametrize(("change", "expected"), [
    ({"data": None}, "a@2: unreadable"),
    ({"version": None}, "a@2: unreadable: the version is NULL"),
    ({"hash": None}, "a@2: hash does not match: stored none"),
    ({"hash": b"\x01" * 31}, "a@2: hash does not match: stored " + "01" * 31),
    ({"event_id": "not a uuid"}, "a@2: unreadable"),
])
def test_rows_unlike_the_schema_are_reported_not_misread(change, expected):
    rows = chain_rows("a", 3) + chain_rows("b", 2)
    for name, value in change.items():
        setattr(rows[1], name, value)
    assert [f[:len(expected)] for f in walk(rows)] == [expected]


def test_a_first_row_without_the_binary_header_is_refused():
    with pytest.raises(BadCopy):
        ChainWalker().feed([copy_row(chain_rows("a", 1)[0])])


def test_an_empty_walk():
    walker = ChainWalker()
    assert walker.feed(copy_rows([])[:0] or [COPY_SIGNATURE + bytes(8) + b"\xff\xff"]) == []
    assert walker.finish() is None
    assert (walker.events, walker.streams) == (0, 0)


def test_checkpoint_lines_parse_and_bad_ones_are_refused():
    head = Head("chat-1", 3, bytes(range(32)))
    assert list(parse_checkpoint([head.to_json() + "\n", "\n"])) == [head]
    for bad in ['{"stream_id": "x"}', "not json", '{"stream_id": "x", "version": 1, "hash": "ab"}']:
        with pytest.raises(BadCheckpoint):
            list(parse_checkpoint([bad]))
