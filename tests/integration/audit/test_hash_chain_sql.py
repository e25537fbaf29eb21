"""The hash chain as the database computes it equals the one computed in Python: the jsonb
text form over arbitrary JSON (unicode, escapes, nesting, numbers), the SQL hash function,
and every hash ``talk_append_events`` stores, whatever the shape of the append."""

from __future__ import annotations

import json
from decimal import Decimal
from uuid import uuid4

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from events.catalogue import chat_stream
from events.envelope import NewEvent
from events.hashchain import ZERO_HASH, event_hash, event_hash_of_values, jsonb_text
from events.store import StreamAppend
from tests.factories import chat_created, metadata, new_chat_append, rename
from tests.integration.audit.conftest import store_on

text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=12)
scalars = (st.none() | st.booleans() | st.integers(-(2**80), 2**80) | text
           | st.floats(allow_nan=False, allow_infinity=False))
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=5),
    max_leaves=16,
)
TRICKY = [
    {"s": 'quote " backslash \\ newline \n tab \t nul-ish \x01 \x1f del \x7f'},
    {"unicode": "é ☃ 😀 \u2028 \u200d 👨‍👩‍👧 🇯🇵", "ä": 1, "z": 2, "zz": {"é": [], "e": {}}},
    {"numbers": [0, -0.0, 1.0, 1.5e-3, 1e20, 1e-7, 0.1, 12345678901234567890123, -2.5, 2**63]},
    {"nested": [[[{"a": [None, True, False, ""]}]]]},
    [], {}, "", None, 0,
]


@pytest.fixture(scope="module")
def pg(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


def postgres_text(conn, value) -> str:
    return conn.execute("SELECT %s::jsonb::text", (Jsonb(value),)).fetchone()[0]


@pytest.mark.parametrize("value", TRICKY)
def test_jsonb_text_of_tricky_values(pg, value):
    shown = postgres_text(pg, value)
    assert jsonb_text(value) == shown
    assert jsonb_text(json.loads(shown, parse_float=Decimal)) == shown


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_jsonb_text_of_any_json(pg, value):
    shown = postgres_text(pg, value)
    assert jsonb_text(value) == shown
    assert jsonb_text(json.loads(shown, parse_float=Decimal)) == shown


@settings(max_examples=60, deadline=None)
@given(data=st.dictionaries(text, json_values, max_size=6), stream=text)
def test_the_sql_hash_function_equals_python(pg, data, stream):
    event_id = uuid4()
    meta = {"actor": {"type": "agent", "id": str(uuid4())}, "request_id": stream}
    row = pg.execute(
        "SELECT talk_event_hash(%s, %s, %s, 7, 'ChatUpdated', 2, ts, %s, %s), ts"
        " FROM (SELECT now() - random() * interval '100 years' AS ts) t",
        (ZERO_HASH, event_id, stream, Jsonb(data), Jsonb(meta))).fetchone()
    assert bytes(row[0]) == event_hash_of_values(ZERO_HASH, event_id, stream, 7, "ChatUpdated",
                                                 2, row[1], data, meta)


async def test_every_stored_hash_chains_as_python_computes_it(fresh_database_url):
    md = metadata()
    async with store_on(fresh_database_url) as store:
        # new streams, several at once, several events each
        a, _ = new_chat_append(customer_id=md.customer_id)
        b, _ = new_chat_append(customer_id=md.customer_id)
        chat_a = a.events[0].event.chat_id
        chat_b = b.events[0].event.chat_id
        many = StreamAppend(a.stream_id, 0, (*a.events, *rename(chat_a, 1, "é\n☃").events,
                                             *rename(chat_a, 2, '"x"').events))
        await store.append([many, b], md)
        # existing streams: one alone, then two together with a new one and a check
        await store.append([rename(chat_b, 1, "b2")], md)
        c, _ = new_chat_append(customer_id=md.customer_id)
        await store.append([rename(chat_a, 3, "a4"), rename(chat_b, 2, "b3"), c,
                            StreamAppend(chat_stream(uuid4()), 0, ())], md)
        # the streams given out of order (the store sorts them; the function does not care)
        d = chat_created(customer_id=md.customer_id)
        d_stream = chat_stream(d.chat_id)
        await store.append([StreamAppend(d_stream, 0, (NewEvent(d_stream, d),)),
                            rename(chat_a, 4, "a5")], md)
        # one event on one stream with a check: the store's one-statement shape, new and not
        e = chat_created(customer_id=md.customer_id)
        e_stream = chat_stream(e.chat_id)
        await store.append([StreamAppend(e_stream, 0, (NewEvent(e_stream, e),)),
                            StreamAppend(b.stream_id, 3, ())], md)
        await store.append([rename(chat_a, 5, "a6 ☃"), StreamAppend(b.stream_id, 3, ())], md)

    with psycopg.connect(fresh_database_url, row_factory=dict_row) as conn:
        rows = conn.execute("SELECT *, data::text AS data_text, metadata::text AS meta_text"
                            " FROM events ORDER BY stream_id, version").fetchall()
        heads = {r["stream_id"]: (r["version"], bytes(r["head_hash"]))
                 for r in conn.execute("SELECT * FROM streams")}
    assert len(rows) == 12
    prev: dict[str, bytes] = {}
    for r in rows:
        before = prev.get(r["stream_id"], ZERO_HASH)
        expected = event_hash(before, r["event_id"], r["stream_id"], r["version"], r["type"],
                              r["schema_version"], r["recorded_at"], r["data_text"],
                              r["meta_text"])
        assert bytes(r["hash"]) == expected, (r["stream_id"], r["version"])
        assert expected == event_hash_of_values(
            before, r["event_id"], r["stream_id"], r["version"], r["type"],
            r["schema_version"], r["recorded_at"], r["data"], r["metadata"])
        prev[r["stream_id"]] = expected
    assert heads == {s: (max(r["version"] for r in rows if r["stream_id"] == s), h)
                     for s, h in prev.items()}
