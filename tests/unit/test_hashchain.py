"""The hash chain in Python: the jsonb text form, the canonical text, the hash (against vectors
computed by the migration's SQL functions), and the chain walker's findings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from uuid import UUID

import pytest

from events.hashchain import (
    ZERO_HASH,
    canonical_text,
    epoch_micros,
    event_hash,
    event_hash_of_values,
    json_string,
    jsonb_text,
)
from events.verify import BadCheckpoint, ChainRow, ChainWalker, Head, parse_checkpoint

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


# --- the walker ------------------------------------------------------------------------------


def chain_rows(stream: str, count: int, head: int | None = None) -> list[ChainRow]:
    rows, prev = [], ZERO_HASH
    for version in range(1, count + 1):
        data = f'{{"n": {version}}}'
        event_id = UUID(int=version)
        h = event_hash(prev, event_id, stream, version, "ChatUpdated", 1, RECORDED, data, "{}")
        rows.append(ChainRow(stream, version, event_id, "ChatUpdated", 1, RECORDED, data, "{}",
                             h, None, None))
        prev = h
    version = count if head is None else head
    return [_with_head(r, version, prev) for r in rows]


def _with_head(row: ChainRow, version: int | None, head_hash: bytes | None) -> ChainRow:
    fields = {name: getattr(row, name) for name in ChainRow.__slots__}
    fields.update(head_version=version, head_hash=head_hash)
    return ChainRow(**fields)


def walk(rows: list[ChainRow]) -> list[str]:
    walker = ChainWalker()
    found = [f for row in rows for f in walker.feed(row)]
    if (last := walker.finish()) is not None:
        found.append(last)
    return [f"{f.stream_id}@{f.version}: {f.problem}" for f in found]


def test_a_clean_store_has_no_findings():
    walker = ChainWalker()
    rows = chain_rows("a", 3) + chain_rows("b", 1)
    assert walk(rows) == []
    for row in rows:
        walker.feed(row)
    walker.finish()
    assert (walker.events, walker.streams) == (4, 2)


def test_changed_data_is_found_at_its_version():
    rows = chain_rows("a", 4)
    r = rows[1]
    rows[1] = ChainRow(r.stream_id, r.version, r.event_id, r.type, r.schema_version,
                       r.recorded_at, '{"n": 99}', r.metadata_text, r.stored_hash,
                       r.head_version, r.head_hash)
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
    renumbered = [rows[0]] + [
        ChainRow(r.stream_id, r.version - 1, r.event_id, r.type, r.schema_version, r.recorded_at,
                 r.data_text, r.metadata_text, r.stored_hash, 3, r.head_hash) for r in rows[1:]]
    [found] = walk(renumbered)
    assert found.startswith("a@2: hash does not match")


def test_a_deleted_tail_is_found_through_the_stream_row():
    rows = chain_rows("a", 4)[:3]  # the stream row still says version 4
    [found] = walk(rows)
    assert found.startswith("a@4: missing")


def test_a_stream_without_a_row_and_a_wrong_head_hash():
    [found] = walk([_with_head(r, None, None) for r in chain_rows("a", 2)])
    assert "no stream row" in found
    [found] = walk([_with_head(r, 2, b"\x00" * 32) for r in chain_rows("a", 2)])
    assert found.startswith("a@2: the stream row's head hash")


def test_findings_of_two_streams_in_a_row_are_both_reported():
    a = chain_rows("a", 2)[:1]  # tail deleted: settled when stream b starts
    b = chain_rows("b", 2)
    b[0] = _with_head(b[0], 2, b[0].head_hash)
    b[0] = ChainRow(*[getattr(b[0], n) for n in ChainRow.__slots__[:8]], b"\x07" * 32,
                    b[0].head_version, b[0].head_hash)
    found = walk(a + b)
    assert [f.split(":")[0] for f in found] == ["a@2", "b@1"]


def test_a_checkpointed_head_that_differs_is_found():
    rows = chain_rows("a", 3)
    r = rows[1]
    rows[1] = ChainRow(*[getattr(r, n) for n in ChainRow.__slots__[:11]], b"\x01" * 32)
    [found] = walk(rows)
    assert found.startswith("a@2: differs from the checkpoint")


def test_checkpoint_lines_parse_and_bad_ones_are_refused():
    head = Head("chat-1", 3, bytes(range(32)))
    assert list(parse_checkpoint([head.to_json() + "\n", "\n"])) == [head]
    for bad in ['{"stream_id": "x"}', "not json", '{"stream_id": "x", "version": 1, "hash": "ab"}']:
        with pytest.raises(BadCheckpoint):
            list(parse_checkpoint([bad]))
