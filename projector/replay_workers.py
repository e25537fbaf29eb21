"""Replays side by side: ``talk projections rebuild --workers K`` (and ``verify``) split the
talks into K slices (:class:`projector.replay.Slice`) and replay them at once into one
schema, each slice on connections of its own.

A replay is bound by Python's CPU (decoding and folding), so one process keeps about one
core busy: the slices run in K processes of their own (``spawn``: nothing of this process,
its pool's sockets least of all, is inherited), each reporting its progress through a
queue. ``processes=False`` runs them as K tasks of this process instead (they overlap only
their waits on Postgres). Each slice's chunks commit with its own checkpoint rows, so
whatever stops a worker, the next run resumes every slice where it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import queue as queue_module
import sys
from dataclasses import dataclass

import orjson
import psycopg
import structlog
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool

from events.upcasting import UPCASTERS
from projector.replay import Bound, Progress, Replay, Slice, fewer_gc_passes
from services.db import Database

POLL_SECONDS = 0.5  # how often the parent looks for a worker that died without a word


class WorkerFailed(RuntimeError):
    pass


class ParentGone(RuntimeError):
    pass


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to make its :class:`Replay` (picklable)."""

    conninfo: str
    schema: str
    checkpoint_name: str
    chunk_size: int
    slice: Slice
    bound: Bound


async def replay_side_by_side(replays: list[Replay], progress: Progress, *,
                              processes: bool = True) -> int:
    """Run every replay (:meth:`Replay.run`) to within a chunk of its bounds; how many events
    they applied. On return the replays' checkpoints are loaded from the table."""
    if len(replays) == 1 or not processes:
        with fewer_gc_passes():  # the tasks' own ones nest inside it, whatever their order
            return sum(await asyncio.gather(*(replay.run(progress) for replay in replays)))
    for replay in replays:
        if replay.upcasters is not UPCASTERS:
            raise ValueError("worker processes replay with the default upcasters only")
    specs = [WorkerSpec(replay.db.pool.conninfo, replay.schema, replay.checkpoint_name,
                        replay.chunk_size, replay.slice, replay.bound) for replay in replays]
    applied = await _in_processes(specs, progress)
    for replay in replays:
        await replay.load_checkpoint()
    return applied


async def _in_processes(specs: list[WorkerSpec], progress: Progress) -> int:
    context = multiprocessing.get_context("spawn")
    reports = context.Queue()
    workers = [context.Process(target=_worker, args=(spec, reports), daemon=True,
                               name=f"talk-replay-{spec.slice.worker}") for spec in specs]
    applied, failures, pending = 0, [], set(range(len(workers)))
    try:
        for worker in workers:
            worker.start()
        while pending:
            report = await asyncio.to_thread(_next_report, reports)
            if report is None:  # no word for a while: did one die without a word?
                for w in list(pending):
                    if not workers[w].is_alive():
                        pending.discard(w)
                        failures.append(f"worker {w} exited with {workers[w].exitcode}")
                continue
            w, kind, value = report
            if kind == "progress":
                progress(value)
            elif kind == "done":
                applied += value
                pending.discard(w)
            else:
                failures.append(f"worker {w}: {value}")
                pending.discard(w)
    finally:
        for worker in workers:
            if worker.is_alive() and pending:
                worker.terminate()
            await asyncio.to_thread(worker.join)
        reports.close()
    if failures:
        raise WorkerFailed("; ".join(failures))
    return applied


def _next_report(reports) -> tuple | None:
    with contextlib.suppress(queue_module.Empty):
        return reports.get(timeout=POLL_SECONDS)
    return None


def _worker(spec: WorkerSpec, reports) -> None:
    """A worker process's entry point: one slice, to within a chunk of its bounds. It says
    only warnings (on stderr); its outcome goes to the parent."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
                        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    w = spec.slice.worker
    try:
        reports.put((w, "done", asyncio.run(_replay_slice(spec, reports))))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which raises
        reports.put((w, "failed", f"{type(exc).__name__}: {exc}"))


async def _replay_slice(spec: WorkerSpec, reports) -> int:
    async def configure(conn: psycopg.AsyncConnection) -> None:
        await conn.set_autocommit(True)
        set_json_loads(orjson.loads, conn)

    pool = AsyncConnectionPool(spec.conninfo, min_size=1, max_size=3, open=False,
                               kwargs={"row_factory": dict_row,
                                       "application_name": "talk-replay-worker"},
                               configure=configure, name="talk-replay-worker")
    await pool.open(wait=True, timeout=30)
    try:
        replay = Replay(Database(pool), spec.schema, spec.checkpoint_name,
                        chunk_size=spec.chunk_size, slice_=spec.slice, bound=spec.bound)
        await replay.load_checkpoint()
        w = spec.slice.worker
        parent = multiprocessing.parent_process()

        def progress(n: int) -> None:
            # Told after each chunk commits. Once the parent is gone (killed: the replay
            # lock went with it, and the next run resumes this copy), stop writing to it.
            if parent is not None and not parent.is_alive():
                raise ParentGone()
            reports.put((w, "progress", n))

        return await replay.run(progress)
    finally:
        await pool.close()
