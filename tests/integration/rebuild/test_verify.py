"""``talk projections verify`` (and ``rebuild``) from the command line: exit 0 on identical
tables; a planted difference is found and named (table, id, column, both values)."""

from __future__ import annotations

from bench.history import HistoryWriter


async def test_verify_finds_planted_differences(live):
    await HistoryWriter(live.url, events=1_500, talks=15, seed=64).write()
    await live.start_projector()
    await live.projected_to_head()
    await live.stop_projectors()  # the tables below are changed by hand: no projector

    code, out = await live.talk_cli("projections", "rebuild")
    assert code == 0, out
    assert "rebuilt the read tables into read_v2 from 1,500 events" in out
    code, out = await live.talk_cli("projections", "verify")
    assert code == 0, out
    assert out.strip().endswith("identical"), out

    message = (await live.fetch("SELECT id::text, text FROM rm_messages WHERE type = 'normal'"
                                " ORDER BY id LIMIT 1"))[0]
    participant = (await live.fetch("SELECT id::text FROM rm_participants ORDER BY id LIMIT 1"))[0]
    chat = (await live.fetch("SELECT id::text, member_count FROM rm_chats ORDER BY id LIMIT 1"))[0]
    await live.fetch("UPDATE rm_messages SET text = 'tampered' WHERE id = %s", (message["id"],))
    await live.fetch("DELETE FROM rm_participants WHERE id = %s", (participant["id"],))
    await live.fetch("UPDATE rm_chats SET member_count = member_count + 5 WHERE id = %s",
                     (chat["id"],))

    code, out = await live.talk_cli("projections", "verify")
    assert code == 1, out
    lines = out.splitlines()
    assert (f'rm_messages {message["id"]} text: live "tampered" != rebuilt'
            f' "{message["text"]}"') in lines, out
    assert f"rm_participants {participant['id']}: missing from the live table" in lines, out
    assert (f"rm_chats {chat['id']} member_count: live {chat['member_count'] + 5}"
            f" != rebuilt {chat['member_count']}") in lines, out
    assert "DIFFERENT (3 rows)" in lines[-1], out
    # Verify leaves nothing behind.
    schemas = await live.fetch("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'read%%'")
    assert [row["nspname"] for row in schemas] == ["read_v2"]
