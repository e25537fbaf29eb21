"""The SQL of an append: which statement the store sends for which shape of append.

Every append is one statement (one round trip; in autocommit mode, one transaction):

- **One event on one stream, plus any checks of other streams at a version** (posting,
  editing, deleting or reacting to a message; renaming a talk; the most common appends by
  far): one plain SQL statement built for that shape (:func:`one_event_statement`). The
  checked streams are share-locked first, then the stream is created, or locked at its
  expected version and moved on; the event's hash is chained on the stream's head by the same
  ``talk_event_hash`` as everywhere else. If a check or the expected version does not hold,
  nothing is written and the statement answers no row; the store then asks which stream is not
  at its version (:data:`REFUSED_STREAM`, one more query, on refusals only) and raises the
  conflict naming it. (Raising inside the statement cost every append a branch of plan to
  start: about 6% of its server time.)
- **Anything else** (several streams with events, several events on a stream, a check that a
  stream does not exist): ``talk_append`` (migration 0008), the whole append as one jsonb
  document (:func:`append_document`).

Why two: a plpgsql function pays a snapshot and an executor start per statement inside it,
and the one-event shape needs none of its loops; as one plain statement it costs the server
about a fifth less (bench/RESULTS.md). Both write the same rows and the same hashes; the tests
of the store, of the hash chain and of the races run through both.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import lru_cache

import orjson
from psycopg.types.json import Jsonb

from events.envelope import Metadata
from events.store import StreamAppend, flatten

Statement = Callable[[Sequence[StreamAppend], Metadata], tuple[str, object]]

APPEND_DOCUMENT = (
    "SELECT event_position, event_tx_id::text::bigint AS tx_id FROM talk_append(%s::jsonb)"
)

_ZERO = "'\\x" + "00" * 32 + "'::bytea"


def dumps(value: object) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError: e.g. an integer beyond 64 bits
        return json.dumps(value, ensure_ascii=False)


def append_document(appends: Sequence[StreamAppend], metadata: Metadata) -> str:
    """The argument of ``talk_append``: each stream (in lock order) with its expected version
    and its events, and the metadata they share."""
    return dumps({
        "streams": [
            [a.stream_id, a.expected_version,
             [[str(ev.event_id), ev.type, ev.schema_version, ev.data_json()] for ev in a.events]]
            for a in flatten(appends)
        ],
        "metadata": metadata.to_json(),
    })


def statement_for(appends: Sequence[StreamAppend], metadata: Metadata) -> tuple[str, object]:
    """The statement and parameters that append ``appends``."""
    written = [a for a in appends if a.events]
    checks = checks_in_lock_order(appends)
    if (len(written) == 1 and len(written[0].events) == 1
            and all(c.expected_version > 0 for c in checks)):
        target, event = written[0], written[0].events[0]
        params: dict[str, object] = {
            "s": target.stream_id, "v": target.expected_version, "id": event.event_id,
            "t": event.type, "sv": event.schema_version, "d": dumps(event.data_json()),
            "m": dumps(metadata.to_json()),
        }
        for i, check in enumerate(checks):
            params[f"c{i}"], params[f"v{i}"] = check.stream_id, check.expected_version
        return one_event_statement(target.expected_version == 0, len(checks)), params
    return APPEND_DOCUMENT, (append_document(appends, metadata),)


@lru_cache(maxsize=32)
def one_event_statement(new_stream: bool, checks: int) -> str:
    """One event on stream ``%(s)s`` (new, or at version ``%(v)s``) after share-locking the
    ``checks`` streams ``%(cI)s`` at versions ``%(vI)s``; answers (position, tx_id)."""
    ctes = ["ev AS (SELECT %(d)s::jsonb AS data, %(m)s::jsonb AS meta)"]
    ctes += [f"k{i} AS (SELECT 1 FROM streams WHERE stream_id = %(c{i})s"
             f" AND version = %(v{i})s::bigint FOR SHARE)" for i in range(checks)]
    checked = "".join(f" AND EXISTS (SELECT FROM k{i})" for i in range(checks))
    version = "1" if new_stream else "%(v)s::bigint + 1"

    def link(prev: str) -> str:
        return (f"talk_event_hash({prev}, %(id)s::uuid, %(s)s, {version}, %(t)s, "
                "%(sv)s::integer, now(), ev.data, ev.meta)")

    if new_stream:
        ctes.append(
            "head AS (INSERT INTO streams (stream_id, version, head_hash)"
            f" SELECT %(s)s, 1, {link(_ZERO)} FROM ev WHERE true{checked}"
            " ON CONFLICT (stream_id) DO NOTHING RETURNING head_hash)")
    else:
        ctes.append(
            "held AS (SELECT head_hash FROM streams"
            f" WHERE stream_id = %(s)s AND version = %(v)s::bigint{checked}"
            " FOR NO KEY UPDATE)")
        ctes.append(
            f"head AS (UPDATE streams SET version = {version}, head_hash = {link('held.head_hash')}"
            " FROM held, ev WHERE streams.stream_id = %(s)s RETURNING streams.head_hash)")
    ctes.append(
        "inserted AS (INSERT INTO events (event_id, stream_id, version, type, schema_version,"
        " data, metadata, recorded_at, hash)"
        f" SELECT %(id)s::uuid, %(s)s, {version}, %(t)s, %(sv)s::integer, ev.data, ev.meta,"
        " now(), head.head_hash FROM head, ev RETURNING position, tx_id)")
    return ("WITH " + ", ".join(ctes)
            + " SELECT position AS event_position, tx_id::text::bigint AS tx_id FROM inserted")


def checks_in_lock_order(appends: Sequence[StreamAppend]) -> list[StreamAppend]:
    """The streams an append only checks (no events), in the order they are locked."""
    return sorted((a for a in appends if not a.events), key=lambda a: a.stream_id)


def refusal_order(appends: Sequence[StreamAppend]) -> tuple[list[str], list[int]]:
    """The streams of a refused append in the order a refusal names them (the checks first, in
    lock order, then the streams written), with their expected versions."""
    ordered = checks_in_lock_order(appends) + [a for a in appends if a.events]
    return [a.stream_id for a in ordered], [a.expected_version for a in ordered]


# The first of the streams (in refusal order) not at its expected version (absent = 0).
REFUSED_STREAM = (
    "SELECT w.stream_id FROM unnest(%s::text[], %s::bigint[]) WITH ORDINALITY"
    " AS w(stream_id, expected, n) LEFT JOIN streams s ON s.stream_id = w.stream_id"
    " WHERE coalesce(s.version, 0) <> w.expected ORDER BY w.n LIMIT 1"
)


# The call of migrations 0001-0007: ``talk_append_events`` with ten arrays, sent in binary.
APPEND_ARRAY_FORM = (
    "SELECT event_position, event_tx_id::text::bigint AS tx_id FROM talk_append_events("
    "%b, %b, %b, %b, %b, %b, %b, %b, %b, %b)"
)


def array_form_statement(appends: Sequence[StreamAppend], metadata: Metadata,
                         ) -> tuple[str, tuple]:
    """``talk_append_events`` with its ten arrays (streams, expected versions, event counts,
    then per event its id, stream, version, type, schema version and data; the metadata), for
    a schema older than migration 0008."""
    ordered = flatten(appends)
    events = [(a, i, ev) for a in ordered for i, ev in enumerate(a.events, start=1)]
    return APPEND_ARRAY_FORM, (
        [a.stream_id for a in ordered],
        [a.expected_version for a in ordered],
        [len(a.events) for a in ordered],
        [ev.event_id for _, _, ev in events],
        [a.stream_id for a, _, _ in events],
        [a.expected_version + i for a, i, _ in events],
        [ev.type for _, _, ev in events],
        [ev.schema_version for _, _, ev in events],
        [Jsonb(ev.data_json()) for _, _, ev in events],
        Jsonb(metadata.to_json()),
    )
