"""A replay over an event stored in an older schema version goes through the upcasters."""

from __future__ import annotations

from uuid import uuid4

from events import catalogue as ev
from events.envelope import NewEvent
from events.store import StreamAppend
from projector.rebuild import rebuild_read_model
from projector.verify import verify_read_model
from services.timefmt import utcnow
from tests.factories import metadata
from tests.history import assert_read_tables_match_history
from tests.integration.old_versions import ChatCreatedV1, ChatCreatedV2, make_chat_created_v2
from tests.integration.rebuild.conftest import Quiet


async def test_a_v1_event_is_upcast_in_the_rebuild(live, monkeypatch):
    make_chat_created_v2(monkeypatch)

    customer = uuid4()
    old_chat, new_chat = uuid4(), uuid4()
    v1 = ChatCreatedV1(chat_id=old_chat, customer_id=customer, kind="group",
                       title="stored as v1", detail="old shape", tm_create=utcnow())
    stream = ev.chat_stream(old_chat)
    joined = ev.ParticipantJoined(chat_id=old_chat, participant_id=uuid4(), owner_type="agent",
                                  owner_id=uuid4(), tm_joined=utcnow())
    await live.store.append([StreamAppend(stream, 0, (NewEvent(stream, v1),
                                                      NewEvent(stream, joined)))],
                            metadata(customer))
    v2 = ChatCreatedV2(chat_id=new_chat, customer_id=customer, type="normal", name="stored as v2",
                       detail="", tm_create=utcnow())
    await live.store.append([StreamAppend(ev.chat_stream(new_chat), 0,
                                          (NewEvent(ev.chat_stream(new_chat), v2),))],
                            metadata(customer))
    stored = await live.fetch("SELECT schema_version, data FROM events WHERE type = 'ChatCreated'"
                              " ORDER BY position")
    assert [(r["schema_version"], "title" in r["data"]) for r in stored] == [(1, True), (2, False)]

    await live.start_projector()
    await live.projected_to_head()
    result = await rebuild_read_model(live.db, progress=Quiet)
    assert result.events == 3

    rows = await live.fetch("SELECT id, type, name, detail, member_count FROM rm_chats ORDER BY name")
    assert [(r["id"], r["type"], r["name"], r["detail"], r["member_count"]) for r in rows] == [
        (old_chat, "group", "stored as v1", "old shape", 1),
        (new_chat, "normal", "stored as v2", "", 0),
    ]
    await live.stop_projectors()
    report = await verify_read_model(live.db, progress=Quiet)
    assert report.identical, [str(d) for d in report.differences]
    await assert_read_tables_match_history(live.url)
