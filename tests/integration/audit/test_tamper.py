"""Tamper evidence: ``talk events verify`` (a separate process, as an auditor runs it) finds
an event changed, deleted or reordered behind the store's back, naming the stream and
version; an untouched store verifies clean; ``--against`` a checkpoint catches a stream
rewritten hashes and all, which the chain alone cannot."""

from __future__ import annotations

from events.catalogue import chat_stream
from tests.integration.audit.conftest import (
    admin,
    rehash_from,
    seed_talks_sync,
    talk_cli,
    talk_events_here,
)


def _untrigger(conn) -> None:
    # Only ever in a test database of its own: stored events are immutable otherwise.
    conn.execute("ALTER TABLE events DISABLE TRIGGER events_immutable")


def test_verify_finds_each_tampering_by_stream_and_version(fresh_database_url):
    url = fresh_database_url
    changed, deleted, swapped, cut, untouched = (
        chat_stream(c) for c in seed_talks_sync(url, 5, 4, per_append=5))

    clean = talk_cli(url, "events", "verify")
    assert clean.code == 0, clean.stderr
    assert clean.stdout == ""
    assert "verified 20 events in 5 streams: clean" in clean.stderr

    with admin(url) as conn:
        _untrigger(conn)
        conn.execute("UPDATE events SET data = jsonb_set(data, '{name}', '\"forged\"')"
                     " WHERE stream_id = %s AND version = 2", (changed,))
        conn.execute("DELETE FROM events WHERE stream_id = %s AND version = 2", (deleted,))
        # swap versions 2 and 3 (through a free version: the pair is unique)
        for old, new in ((2, 1000), (3, 2), (1000, 3)):
            conn.execute("UPDATE events SET version = %s WHERE stream_id = %s AND version = %s",
                         (new, swapped, old))
        conn.execute("DELETE FROM events WHERE stream_id = %s AND version = 4", (cut,))

    ran = talk_cli(url, "events", "verify")
    assert ran.code == 1, ran.stderr
    lines = ran.stdout.splitlines()
    assert any(line.startswith(f"stream {changed} version 2: hash does not match")
               for line in lines), lines
    assert any(line.startswith(f"stream {deleted} version 2: missing") for line in lines), lines
    assert any(line.startswith(f"stream {swapped} version 2: hash does not match")
               for line in lines), lines
    assert any(line.startswith(f"stream {cut} version 4: missing") for line in lines), lines
    assert not any(untouched in line for line in lines), lines
    assert len(lines) == 4, lines  # the first problem of each stream, once
    assert "4 problem(s) found" in ran.stderr


def test_verify_finds_a_forged_hash_and_a_stream_emptied(fresh_database_url, capsys):
    url = fresh_database_url
    forged, emptied = (chat_stream(c) for c in seed_talks_sync(url, 2, 3))
    with admin(url) as conn:
        _untrigger(conn)
        # the data changed and its own hash recomputed: the next link breaks
        conn.execute("UPDATE events SET data = jsonb_set(data, '{name}', '\"forged\"')"
                     " WHERE stream_id = %s AND version = 2", (forged,))
        conn.execute(
            "UPDATE events e SET hash = talk_event_hash((SELECT hash FROM events p"
            " WHERE p.stream_id = e.stream_id AND p.version = 1), e.event_id, e.stream_id,"
            " e.version, e.type, e.schema_version, e.recorded_at, e.data, e.metadata)"
            " WHERE e.stream_id = %s AND e.version = 2", (forged,))
        conn.execute("DELETE FROM events WHERE stream_id = %s", (emptied,))

    ran = talk_events_here(url, capsys, "verify")
    assert ran.code == 1
    assert f"stream {forged} version 3: hash does not match" in ran.stdout
    assert f"stream {emptied} version 1: no event stored" in ran.stdout


def test_a_rewritten_tail_is_caught_only_against_a_checkpoint(fresh_database_url, tmp_path, capsys):
    url = fresh_database_url
    grows, rewritten, erased = (chat_stream(c) for c in seed_talks_sync(url, 3, 4))
    checkpoint = tmp_path / "heads.ndjson"
    made = talk_events_here(url, capsys, "checkpoint", "-o", str(checkpoint))
    assert made.code == 0, made.stderr
    assert len(checkpoint.read_text().splitlines()) == 3

    # Legitimate growth after the checkpoint is fine.
    seed_more = talk_events_here(url, capsys, "verify", "--against", str(checkpoint))
    assert seed_more.code == 0, seed_more.stdout + seed_more.stderr
    assert "against 3 checkpointed heads: clean" in seed_more.stderr

    with admin(url) as conn:
        _untrigger(conn)
        conn.execute("UPDATE events SET data = jsonb_set(data, '{name}', '\"rewritten\"')"
                     " WHERE stream_id = %s AND version = 2", (rewritten,))
        rehash_from(conn, rewritten, 2)
        conn.execute("DELETE FROM events WHERE stream_id = %s", (erased,))
        conn.execute("DELETE FROM streams WHERE stream_id = %s", (erased,))

    # The chain alone is consistent again: this is what verify cannot see by itself.
    alone = talk_events_here(url, capsys, "verify")
    assert alone.code == 0, alone.stdout

    against = talk_events_here(url, capsys, "verify", "--against", str(checkpoint))
    assert against.code == 1
    lines = against.stdout.splitlines()
    assert f"stream {rewritten} version 4: differs from the checkpoint" in against.stdout, lines
    assert f"stream {erased} version 4: the checkpointed head is gone" in against.stdout, lines
    assert not any(grows in line for line in lines)
    assert len(lines) == 2


def test_appends_after_a_checkpoint_still_verify_against_it(fresh_database_url, tmp_path, capsys):
    url = fresh_database_url
    seed_talks_sync(url, 2, 2)
    checkpoint = tmp_path / "heads.ndjson"
    assert talk_events_here(url, capsys, "checkpoint", "-o", str(checkpoint)).code == 0
    seed_talks_sync(url, 2, 3)
    ran = talk_events_here(url, capsys, "verify", "--against", str(checkpoint))
    assert ran.code == 0, ran.stdout + ran.stderr
    assert "verified 10 events in 4 streams, against 2 checkpointed heads: clean" in ran.stderr


def test_a_bad_checkpoint_file_is_refused(fresh_database_url, tmp_path, capsys):
    bad = tmp_path / "bad.ndjson"
    bad.write_text("not a checkpoint\n")
    ran = talk_events_here(fresh_database_url, capsys, "verify", "--against", str(bad))
    assert ran.code == 2
    assert "is not a checkpoint" in ran.stderr
    missing = talk_events_here(fresh_database_url, capsys, "verify", "--against", str(tmp_path / "no"))
    assert missing.code == 2
