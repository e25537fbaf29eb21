"""``talk projections rebuild --workers K``: the talks replayed in K slices side by side (each
in a process of its own) make exactly the rows one replay makes, and verify finds the
switched-in tables identical, with one worker or two."""

from __future__ import annotations

from bench.history import HistoryWriter
from projector.rebuild import rebuild_read_model
from tests.integration.rebuild.conftest import Quiet


async def test_two_workers_make_the_rows_one_makes(live):
    await HistoryWriter(live.url, events=2_000, talks=24, seed=71).write()
    await live.start_projector()
    await live.projected_to_head()
    await live.stop_projectors()  # both rebuilds at the same place
    projected = await live.read_tables()

    result = await rebuild_read_model(live.db, progress=Quiet, chunk_size=300, workers=1)
    assert (result.version, result.events) == (2, 2_000)
    one_worker = await live.read_tables()
    assert one_worker == projected

    code, out = await live.talk_cli("projections", "rebuild", "--workers", "2")
    assert code == 0, out
    assert "into read_v3 from 2,000 events" in out and "2 worker(s)" in out, out
    assert await live.read_tables() == one_worker
    code, out = await live.talk_cli("projections", "verify", "--workers", "2")
    assert code == 0, out
    assert out.strip().endswith("identical"), out
    assert [c[:2] for c in await live.checkpoints()] == [(0, 1)]  # the layout is unchanged
    code, out = await live.talk_cli("projections", "rebuild", "--workers", "0")
    assert code == 2, out
