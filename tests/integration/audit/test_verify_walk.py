"""``talk events verify`` against PostgreSQL on events the catalogue would never write: stream
ids, types and payloads full of quotes, backslashes, control characters and non-ASCII text,
and times before 1970 and 2000 (the walk reads ``recorded_at`` as microseconds since
2000-01-01). The walk's own rendering of the canonical text must give back every hash the
store computed, and still find a change; the NDJSON export of the same events must hold them
exactly."""

from __future__ import annotations

import json
from decimal import Decimal
from uuid import uuid4

import orjson
import psycopg
import pytest
from psycopg.types.json import Jsonb

from events.hashchain import ZERO_HASH, event_hash_of_values
from services.timefmt import format_ts, parse_ts
from tests.integration.audit.conftest import admin, rehash_from, settled, talk_events_here
from tests.integration.audit.test_hash_chain_sql import TRICKY

STREAMS = ["chat-plain", 'q"uote\\back slash', "tab\there\nnewline\x01", "é ☃ 😀 \u2028"]
TYPES = ["ChatUpdated", 'Odd"Type\\', "Ünïcode"]
METADATA = {"actor": {"type": "agent", "id": "a\\b"}, "request_id": 'r"1\n',
            "customer_id": "c ☃"}


def append_raw(conn: psycopg.Connection, stream: str, count: int) -> None:
    """``count`` events on a new ``stream`` through ``talk_append_events`` itself."""
    values = [TRICKY[i % len(TRICKY)] for i in range(count)]
    conn.execute(
        "SELECT * FROM talk_append_events(%s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb[], %s)",
        ([stream], [0], [count], [uuid4() for _ in range(count)], [stream] * count,
         list(range(1, count + 1)), [TYPES[i % len(TYPES)] for i in range(count)],
         [1 + i % 3 for i in range(count)], [Jsonb(v) for v in values], Jsonb(METADATA)))


def move_in_time(conn: psycopg.Connection, stream: str, version: int, moment: str) -> None:
    """Set an event's ``recorded_at`` and rehash the stream from there, as the store would
    have had the event been recorded then (the immutability trigger off for it)."""
    conn.execute("ALTER TABLE events DISABLE TRIGGER events_immutable")
    conn.execute("UPDATE events SET recorded_at = %s WHERE stream_id = %s AND version = %s",
                 (moment, stream, version))
    rehash_from(conn, stream, version)
    conn.execute("ALTER TABLE events ENABLE TRIGGER events_immutable")


@pytest.fixture()
def tricky_store(fresh_database_url):
    with admin(fresh_database_url) as conn:
        for stream in STREAMS:
            append_raw(conn, stream, len(TRICKY))
        move_in_time(conn, STREAMS[0], 2, "1999-12-31 23:59:59.999999+00")
        move_in_time(conn, STREAMS[0], 3, "1969-07-20 20:17:40.000001+00")
    return fresh_database_url


@pytest.fixture()
def exportable_store(tricky_store):
    """The tricky store once its events are below the xmin barrier. The export reads below
    it (the walk of verify does not), and the barrier is server-wide: an open transaction of
    another database (another test, a bench building an index) holds it back, and an export
    run before it passes finds none of these events."""
    settled(tricky_store)
    return tricky_store


def test_the_walk_recomputes_every_hash_of_tricky_events(tricky_store, capsys):
    url = tricky_store
    events = len(STREAMS) * len(TRICKY)
    clean = talk_events_here(url, capsys, "verify")
    assert clean.code == 0, clean.stdout + clean.stderr
    assert f"verified {events} events in {len(STREAMS)} streams: clean" in clean.stderr

    changed = STREAMS[1]
    with admin(url) as conn:
        conn.execute("ALTER TABLE events DISABLE TRIGGER events_immutable")
        conn.execute("UPDATE events SET metadata = jsonb_set(metadata, '{request_id}', '\"r\"')"
                     " WHERE stream_id = %s AND version = 4", (changed,))
    found = talk_events_here(url, capsys, "verify")
    assert found.code == 1
    [line] = found.stdout.splitlines()
    assert line.startswith(f"stream {changed} version 4: hash does not match")


def test_an_export_line_holds_its_event_exactly(exportable_store, capsys):
    url = exportable_store
    ran = talk_events_here(url, capsys, "export")
    assert ran.code == 0, ran.stderr
    lines = ran.stdout.split("\n")  # (not splitlines: U+2028 stays raw in JSON text)
    assert lines.pop() == ""
    assert len(lines) == len(STREAMS) * len(TRICKY)
    with admin(url) as conn:
        stored = conn.execute(
            "SELECT position, tx_id::text::bigint, event_id, stream_id, version, type,"
            " schema_version, recorded_at, hash, data::text, metadata::text"
            " FROM events ORDER BY tx_id, position").fetchall()
    heads: dict[str, bytes] = {}
    for line, row in zip(lines, stored, strict=True):
        (position, tx_id, event_id, stream, version, type_, schema_version, recorded_at, hash_,
         data, metadata) = row
        # the head as json.dumps writes it, then data and metadata as stored: the jsonb text
        head = orjson.dumps({
            "position": position, "tx_id": tx_id, "event_id": str(event_id),
            "stream_id": stream, "version": version, "type": type_,
            "schema_version": schema_version, "recorded_at": format_ts(recorded_at),
            "hash": bytes(hash_).hex()}).decode()
        assert line == f'{head[:-1]},"data":{data},"metadata":{metadata}}}'
        item = json.loads(line, parse_float=Decimal)
        recomputed = event_hash_of_values(
            heads.get(stream, ZERO_HASH), item["event_id"], stream, version, type_,
            item["schema_version"], parse_ts(item["recorded_at"]), item["data"],
            item["metadata"])
        assert recomputed.hex() == item["hash"], (stream, version)
        heads[stream] = recomputed


def test_a_null_where_the_schema_forbids_one(exportable_store, capsys):
    """Tampering that drops a NOT NULL: verify reports the event, export refuses to write a
    line it cannot render and says so."""
    url = exportable_store
    with admin(url) as conn:
        conn.execute("ALTER TABLE events DISABLE TRIGGER events_immutable")
        conn.execute("ALTER TABLE events ALTER COLUMN hash DROP NOT NULL,"
                     " ALTER COLUMN data DROP NOT NULL")
        conn.execute("UPDATE events SET hash = NULL WHERE stream_id = %s AND version = 2",
                     (STREAMS[0],))
        conn.execute("UPDATE events SET data = NULL WHERE stream_id = %s AND version = 3",
                     (STREAMS[1],))
    found = talk_events_here(url, capsys, "verify")
    assert found.code == 1
    assert found.stdout.splitlines() == [
        f"stream {STREAMS[0]} version 2: hash does not match: stored none, recomputed "
        + found.stdout.split("recomputed ")[1][:64]
        + " (this event or its predecessor was changed, deleted or moved)",
        f"stream {STREAMS[1]} version 3: unreadable: a field the hash covers is NULL",
    ]
    exported = talk_events_here(url, capsys, "export")
    assert exported.code == 1
    assert "a stored event has a NULL column" in exported.stderr
