"""``talk events export``: every event exactly once, in the global order, with its full
envelope; flat memory whatever the size of the history; the filters; CSV; and an export is
enough to recompute every hash without the database."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from uuid import UUID, uuid4

import orjson
import psycopg
import pytest

from events.append_statements import statement_for
from events.catalogue import MessagePosted, chat_stream, message_stream
from events.envelope import Metadata, NewEvent
from events.hashchain import ZERO_HASH, event_hash_of_values
from events.store import StreamAppend
from services.timefmt import format_ts, parse_ts, utcnow
from tests.factories import new_chat_append
from tests.integration.audit.conftest import (
    ROOT,
    admin,
    seed_talks,
    settled,
    store_on,
    talk_events_here,
    wait_settled,
)

ENVELOPE = {"position", "tx_id", "event_id", "stream_id", "version", "type", "schema_version",
            "recorded_at", "hash", "data", "metadata"}


def export_in_subprocess(url: str, path) -> int:
    """Run ``talk events export`` into ``path``; returns the process's peak RSS in KiB."""
    env = {**os.environ, "TALK_DATABASE_URL": url, "TALK_LOG_LEVEL": "WARNING"}
    with open(path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "services.cli", "events", "export"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode()
        proc.stderr.close()
    assert proc.returncode == 0, err
    return usage.ru_maxrss


def check_export_against_store(url: str, path, *, recompute: bool) -> int:
    """Every line is the next event of the global order, with its whole envelope; with
    ``recompute``, its hash also recomputes from the line alone (chained per stream)."""
    with psycopg.connect(url) as conn:  # a transaction, for the server-side cursor
        cur = conn.cursor(name="expected")
        cur.itersize = 5000
        cur.execute("SELECT position, tx_id::text::bigint, event_id, stream_id, version,"
                    " recorded_at, hash FROM events ORDER BY tx_id, position")
        heads: dict[str, bytes] = {}
        count = 0
        with open(path, encoding="utf-8") as lines:
            for expected, line in zip(cur, lines, strict=True):
                item = json.loads(line, parse_float=Decimal) if recompute else orjson.loads(line)
                assert set(item) == ENVELOPE
                position, tx_id, event_id, stream_id, version, recorded_at, hash_ = expected
                assert (item["position"], item["tx_id"], item["event_id"], item["stream_id"],
                        item["version"], item["recorded_at"], item["hash"]) == (
                    position, tx_id, str(event_id), stream_id, version, format_ts(recorded_at),
                    bytes(hash_).hex())
                if recompute:
                    recomputed = event_hash_of_values(
                        heads.get(stream_id, ZERO_HASH), item["event_id"], stream_id, version,
                        item["type"], item["schema_version"], parse_ts(item["recorded_at"]),
                        item["data"], item["metadata"])
                    assert recomputed.hex() == item["hash"]
                    heads[stream_id] = recomputed
                count += 1
    return count


@pytest.mark.slow
def test_export_of_100000_events_is_exact_in_order_and_flat(fresh_database_url, tmp_path):
    url = fresh_database_url

    async def seed(talks: int) -> None:
        async with store_on(url) as store:
            await seed_talks(store, talks, 100, per_append=10)

    asyncio.run(seed(100))
    settled(url)
    small_rss = export_in_subprocess(url, tmp_path / "small.ndjson")
    assert check_export_against_store(url, tmp_path / "small.ndjson", recompute=True) == 10_000

    asyncio.run(seed(900))
    settled(url)
    large_rss = export_in_subprocess(url, tmp_path / "large.ndjson")
    assert check_export_against_store(url, tmp_path / "large.ndjson", recompute=False) == 100_000
    # 100,000 exported lines are ~60 MB: a process holding them would be far past this.
    assert large_rss < 1.5 * small_rss, (small_rss, large_rss)


# --- filters and formats ---------------------------------------------------------------------


def _message(chat_id: UUID, customer_id: UUID, author: UUID, text: str) -> StreamAppend:
    message_id = uuid4()
    stream = message_stream(message_id)
    event = MessagePosted(message_id=message_id, chat_id=chat_id, owner_type="agent",
                          owner_id=author, type="normal", text=text, tm_create=utcnow())
    return StreamAppend(stream, 0, (NewEvent(stream, event),))


@pytest.fixture()
def two_customers(fresh_database_url):
    """Customer A: two talks with messages; customer B: one talk with a message."""
    url = fresh_database_url
    a, b = uuid4(), uuid4()
    agent = uuid4()

    async def seed() -> dict:
        async with store_on(url) as store:
            chats_a = await seed_talks(store, 2, 2, customer_id=a)
            chats_b = await seed_talks(store, 1, 1, customer_id=b)
            md_a = Metadata(a, "agent", agent, request_id="req-a")
            md_b = Metadata(b, "agent", agent, request_id="req-b")
            await store.append([_message(chats_a[0], a, agent, "one, \"quoted\"\nline")], md_a)
            await store.append([_message(chats_a[1], a, agent, "two")], md_a)
            await store.append([_message(chats_b[0], b, agent, "three")], md_b)
            await store.append([_message(chats_a[0], a, agent, "four ☃")], md_a)
        await wait_settled(url)
        return {"url": url, "a": a, "b": b, "chats_a": chats_a, "chats_b": chats_b}

    return asyncio.run(seed())


def _ndjson(ran) -> list[dict]:
    assert ran.code == 0, ran.stderr
    return [json.loads(line) for line in ran.stdout.splitlines()]


def test_filters(two_customers, capsys):
    url = two_customers["url"]
    everything = _ndjson(talk_events_here(url, capsys, "export"))
    assert len(everything) == 9
    with admin(url) as conn:
        order = [r[0] for r in conn.execute("SELECT position FROM events ORDER BY tx_id, position")]
    assert [e["position"] for e in everything] == order

    by_a = _ndjson(talk_events_here(url, capsys, "export", "--customer-id", str(two_customers["a"])))
    assert by_a == [e for e in everything if e["metadata"]["customer_id"] == str(two_customers["a"])]
    assert len(by_a) == 7

    chat = two_customers["chats_a"][0]
    by_chat = _ndjson(talk_events_here(url, capsys, "export", "--chat-id", str(chat)))
    assert [e["type"] for e in by_chat] == ["ChatCreated", "ChatUpdated", "MessagePosted",
                                            "MessagePosted"]
    assert {e["stream_id"] for e in by_chat} - {chat_stream(chat)} == {
        e["stream_id"] for e in everything
        if e["type"] == "MessagePosted" and e["data"]["chat_id"] == str(chat)}

    p = [e["position"] for e in everything]
    window = _ndjson(talk_events_here(url, capsys, "export", "--since", str(p[2]),
                                      "--until", str(p[5])))
    assert window == [e for e in everything if p[2] <= e["position"] <= p[5]]

    since = everything[6]["recorded_at"]
    later = _ndjson(talk_events_here(url, capsys, "export", "--since", since))
    assert later == [e for e in everything if e["recorded_at"] >= since]
    iso = parse_ts(since).isoformat()  # 2024-...T...+00:00
    assert _ndjson(talk_events_here(url, capsys, "export", "--since", iso)) == later
    before = _ndjson(talk_events_here(url, capsys, "export", "--until", since))
    assert before == [e for e in everything if e["recorded_at"] <= since]


def test_csv_export(two_customers, capsys):
    url = two_customers["url"]
    ran = talk_events_here(url, capsys, "export", "--format", "csv", "--customer-id",
                           str(two_customers["b"]))
    assert ran.code == 0, ran.stderr
    rows = list(csv.DictReader(io.StringIO(ran.stdout)))
    assert [r["type"] for r in rows] == ["ChatCreated", "MessagePosted"]
    message = rows[1]
    assert message["customer_id"] == str(two_customers["b"])
    assert message["actor_type"] == "agent" and UUID(message["actor_id"])
    assert message["request_id"] == "req-b"
    assert json.loads(message["data"])["text"] == "three"
    assert json.loads(message["metadata"])["request_id"] == "req-b"
    assert len(message["hash"]) == 64

    # as Python's csv writes it: the same quoting, rows ending with \r\n
    rewritten = io.StringIO()
    csv.writer(rewritten).writerows(csv.reader(io.StringIO(ran.stdout, newline="")))
    assert ran.stdout == rewritten.getvalue()
    everything = talk_events_here(url, capsys, "export", "--format", "csv")
    rewritten = io.StringIO()
    csv.writer(rewritten).writerows(csv.reader(io.StringIO(everything.stdout, newline="")))
    assert everything.stdout == rewritten.getvalue()

    ndjson = _ndjson(talk_events_here(url, capsys, "export", "--customer-id",
                                      str(two_customers["b"])))
    assert [int(r["position"]) for r in rows] == [e["position"] for e in ndjson]
    assert [r["hash"] for r in rows] == [e["hash"] for e in ndjson]


def test_a_csv_field_with_a_line_break_keeps_it(fresh_database_url, capsys):
    """Only each row's end becomes \\r\\n: a line break inside a quoted field stays as it is."""
    url = fresh_database_url
    customer, chat = uuid4(), uuid4()

    async def seed() -> None:
        async with store_on(url) as store:
            appends = new_chat_append(customer_id=customer)
            md = Metadata(customer, "agent", uuid4(), request_id='two\nlines, "q"')
            await store.append([appends[0]], md)
            await store.append([_message(chat, customer, uuid4(), "x")], md)

    asyncio.run(seed())
    settled(url)
    ran = talk_events_here(url, capsys, "export", "--format", "csv")
    assert ran.code == 0, ran.stderr
    assert '"two\nlines, ""q"""' in ran.stdout
    rows = list(csv.DictReader(io.StringIO(ran.stdout, newline="")))
    assert [r["request_id"] for r in rows] == ['two\nlines, "q"'] * 2
    rewritten = io.StringIO()
    csv.writer(rewritten).writerows(csv.reader(io.StringIO(ran.stdout, newline="")))
    assert ran.stdout == rewritten.getvalue()


def test_a_quoted_newline_stays_on_one_line(two_customers, capsys):
    ran = talk_events_here(two_customers["url"], capsys, "export", "--chat-id",
                           str(two_customers["chats_a"][0]))
    texts = [json.loads(line)["data"].get("text") for line in ran.stdout.splitlines()]
    assert 'one, "quoted"\nline' in texts


@pytest.mark.parametrize("bad", ["yesterday", "2024-13-01", "-5", "12:00"])
def test_a_bad_bound_is_refused(fresh_database_url, capsys, bad):
    ran = talk_events_here(fresh_database_url, capsys, "export", "--since", bad)
    assert ran.code == 2
    assert "neither a position nor a timestamp" in ran.stderr
    assert ran.stdout == ""


def test_an_export_never_passes_a_transaction_still_in_flight(two_customers, capsys):
    """As read_all: an event committed after one still in flight waits for it, so an export
    is always a prefix of the global order."""
    url = two_customers["url"]
    before = _ndjson(talk_events_here(url, capsys, "export"))
    slow = new_chat_append(customer_id=two_customers["a"])
    with psycopg.connect(url) as in_flight:  # a transaction left open
        in_flight.execute(*statement_for([slow[0]], slow[1]))
        asyncio.run(_append_talk(url, two_customers["a"]))  # commits after it started
        assert _ndjson(talk_events_here(url, capsys, "export")) == before
        in_flight.commit()
    settled(url)
    after = _ndjson(talk_events_here(url, capsys, "export"))
    assert after[:len(before)] == before
    assert [e["stream_id"] for e in after[len(before):]][0] == slow[0].stream_id
    assert len(after) == len(before) + 2


async def _append_talk(url: str, customer_id: UUID) -> None:
    async with store_on(url) as store:
        await seed_talks(store, 1, 1, customer_id=customer_id)
