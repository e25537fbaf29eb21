"""``talk projections rebuild``: a fresh copy of the read tables from the first event, built
beside the live copy and switched in without downtime.

1. Take the replay lock (one rebuild or verify at a time), and drop what a crashed run left
   (a half-built copy is resumed instead when it is the next version).
2. Create schema ``read_v<N+1>`` with the tables and their primary keys, and project the
   whole history into it with its own checkpoint (``rebuild_v<N+1>``), in big chunks
   (:class:`projector.replay.Replay`), never passing the live projector: with the
   projection in partitions, each talk's events up to its partition's checkpoint.
   ``--workers K`` splits the talks into K slices replayed side by side
   (:mod:`projector.replay_workers`). The live projector keeps running on the old copy;
   the query API keeps reading it.
3. Build the secondary indexes (faster after the bulk load than during it), catch up again.
4. The switch, one transaction: lock the live checkpoint rows (``FOR UPDATE``: a projector
   batch locks its partition's first thing too, so a batch runs wholly before or wholly
   after the switch), catch the new copy up to exactly the live checkpoints (each
   partition's talks to their partition's), point the ``rm_*`` views at the new tables,
   record the version. The live checkpoints stay as they are. Readers in flight
   finish on the old tables;
   readers that arrive during the switch wait on the views' lock for its few milliseconds
   and then read the new tables. A reader holding one view while it waits for another
   would deadlock with the switch: the switch waits for the views at most half the
   server's ``deadlock_timeout``, so it is always the one that gives up (a reader never
   gets an error); it then rolls back and is tried again.
5. Drop the old schema.

Changing ``TALK_PROJECTOR_PARTITIONS`` takes a rebuild (the checkpoints are laid out in
partitions differently): when the stored layout differs, the copy is built up to the place
up to which every event is projected in its partition
(:func:`projector.replay.settled_checkpoint`), and the switch lays the checkpoints out anew
there, in the new number of partitions (and moves the outbox rows not yet published to
their talk's new partition). The new projectors go on from there: no event after
it is left unprojected (and so unpublished: the outbox is written by the projector); those
after it that a partition ahead had projected are published once more (at least once:
consumers dedupe). Only with every projector stopped: one running would go on with the old
layout, so the rebuild refuses (:func:`projector.running.projector_running`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import psycopg
import structlog

from events.envelope import START, Checkpoint
from events.upcasting import UPCASTERS, Upcasters
from projector.checkpoints import lock_checkpoint, set_checkpoints
from projector.partitioning import partition_expression
from projector.read_schema import (
    LIVE_CHECKPOINT,
    check_schema_name,
    create_indexes,
    create_tables,
    current_version,
    point_views_at,
    schema_version,
    set_current_version,
    version_schema,
)
from projector.replay import CHUNK_SIZE, Bound, Replay, Slice, live_layout
from projector.replay_workers import replay_side_by_side
from projector.running import projector_running
from services.cli_support import EXIT_OK, Progress, Unavailable, check_reachable, run_tool
from services.db import Database, make_pool
from services.retry import Backoff, pause
from services.settings import Settings

log = structlog.get_logger("talk.rebuild")

REPLAY_LOCK = 0x74616C6B_72706C79  # "talkrply": one rebuild or verify at a time
SCRATCH_SCHEMA = "read_verify"
VERIFY_CHECKPOINT = "verify"
CHECKPOINT_LOCK_TIMEOUT = "30s"  # a projector batch in flight finishes first
SWITCH_ATTEMPTS = 30
DROP_ATTEMPTS = 30

ProgressFactory = Callable[[str, int], Progress]

# Laying the checkpoints out anew: the outbox rows not yet published go to the publisher of
# their talk's new partition (a talk's rows stay in one partition, in seq order).
_OUTBOX_TO_PARTITIONS = ("UPDATE outbox SET partition = {partition}"
                         " WHERE partition IS DISTINCT FROM {partition}")


class ReplayBusy(RuntimeError):
    def __init__(self) -> None:
        super().__init__("another `talk projections rebuild` or `verify` is running")


class ProjectorRunning(RuntimeError):
    def __init__(self, stored: int, partitions: int) -> None:
        super().__init__(
            f"the live checkpoints are laid out in {stored} partition(s) and"
            f" TALK_PROJECTOR_PARTITIONS is {partitions}: the rebuild lays them out anew only"
            " with every `talk projector` stopped, and one is running (it holds a projector"
            " lock); stop them all, run the rebuild, then start them with the new setting")


@dataclass(frozen=True)
class RebuildResult:
    version: int
    schema: str
    events: int
    seconds: float
    checkpoint: Checkpoint  # the furthest live checkpoint the new copy stands at
    old_schema_dropped: bool
    partitions: int = 1  # the live checkpoints' layout after the switch
    relaid: bool = False  # laid out anew (TALK_PROJECTOR_PARTITIONS changed)

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0


@asynccontextmanager
async def replay_lock(db: Database) -> AsyncIterator[None]:
    """A session-level advisory lock held for the whole run (released with its connection
    if the process dies)."""
    async with db.statement("replay_lock") as conn:
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok", (REPLAY_LOCK,))
        if not (await cur.fetchone())["ok"]:
            raise ReplayBusy()
        try:
            yield
        finally:
            with contextlib.suppress(psycopg.Error):
                await conn.execute("SELECT pg_advisory_unlock(%s)", (REPLAY_LOCK,))


async def replay_schemas(db: Database) -> list[str]:
    """Every schema a rebuild or verify may have made."""
    async with db.statement("replay_list_schemas") as conn:
        cur = await conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname ~ '^read_v[0-9]+$' OR nspname = %s"
            " ORDER BY nspname", (SCRATCH_SCHEMA,))
        return [row["nspname"] for row in await cur.fetchall()]


async def drop_schema(db: Database, schema: str) -> bool:
    """Drop a schema no view reads any more, once the readers still on its tables are done.
    Its tables are locked one by one, and a reader whose plan was cached may still lock
    them in another order: the same short ``lock_timeout`` as the switch, and retries.
    False if it never got them (the next rebuild drops it)."""
    schema = check_schema_name(schema)
    backoff = Backoff(0.05, 2.0)
    for attempt in range(1, DROP_ATTEMPTS + 1):
        try:
            async with db.transaction("replay_drop_schema") as conn:
                lock_timeout = await _below_deadlock_timeout(conn)
                await conn.execute(f"SET LOCAL lock_timeout = '{lock_timeout}ms'")
                if (version := schema_version(schema)) is not None:
                    if version == await current_version(conn):
                        raise RuntimeError(f"refusing to drop {schema}: the views read it")
                await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            return True
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected) as exc:
            log.info("replay.drop_waiting", schema=schema, attempt=attempt,
                     reason=type(exc).__name__)
            await pause(backoff.next())
    log.warning("replay.drop_gave_up", schema=schema)
    return False


async def _prepare(db: Database, replay: Replay) -> bool:
    """Clear what earlier runs left; returns whether ``replay`` resumes a half-built copy."""
    async with db.statement("rebuild_inspect") as conn:
        current = await current_version(conn)
        cur = await conn.execute("SELECT 1 FROM projector_checkpoints WHERE name = %s"
                                 " AND partitions = %s",
                                 (replay.checkpoint_name, replay.slice.groups))
        has_checkpoint = await cur.fetchone() is not None
    resume = False
    for schema in await replay_schemas(db):
        if schema == replay.schema and has_checkpoint:
            resume = True
        elif schema_version(schema) != current:
            await drop_schema(db, schema)
    async with db.statement("rebuild_clear_checkpoints") as conn:
        await conn.execute(
            "DELETE FROM projector_checkpoints WHERE (name LIKE 'rebuild\\_v%%' OR name = %s)"
            " AND name <> %s", (VERIFY_CHECKPOINT, replay.checkpoint_name if resume else ""))
    return resume


async def create_copy(db: Database, replay: Replay) -> None:
    """The schema, its tables and the replay's checkpoint rows (one per group of its
    slices), in one transaction (so a copy exists exactly when its checkpoint does)."""
    async with db.transaction("replay_create_copy") as conn:
        await create_tables(conn, replay.schema)
        await set_checkpoints(conn, replay.checkpoint_name, START, replay.slice.groups)


def side_by_side(db: Database, schema: str, checkpoint_name: str, bound: Bound, workers: int,
                 *, chunk_size: int, upcasters: Upcasters) -> list[Replay]:
    """One replay per slice of the talks, each bound by ``bound``."""
    return [Replay(db, schema, checkpoint_name, upcasters=upcasters, chunk_size=chunk_size,
                   slice_=slice_, bound=bound)
            for slice_ in Slice.all(workers, bound.partitions)]


async def remaining(replays: list[Replay]) -> int:
    return sum([await replay.remaining() for replay in replays])


async def catch_up_exactly(conn: psycopg.AsyncConnection, replays: list[Replay],
                           bounds: list[Checkpoint], progress: Progress) -> None:
    """Every slice up to exactly ``bounds``, in ``conn``'s transaction."""
    for replay in replays:
        await replay.catch_up_on(conn, progress, bounds)
        if not await replay.at_bound(conn, bounds):
            raise RuntimeError(f"{replay.schema} (worker {replay.slice.worker}) is at"
                               f" {replay.checkpoints}, its bounds at {bounds}")


async def rebuild_read_model(db: Database, *, progress: ProgressFactory = Progress,
                             chunk_size: int = CHUNK_SIZE,
                             upcasters: Upcasters = UPCASTERS, partitions: int | None = None,
                             workers: int = 1, processes: bool = True) -> RebuildResult:
    """``partitions``: TALK_PROJECTOR_PARTITIONS (None: the layout the live checkpoints
    have); ``workers`` slices replayed side by side, in processes of their own or not."""
    started = time.monotonic()
    async with replay_lock(db):
        async with db.statement("rebuild_inspect") as conn:
            current = await current_version(conn)
            stored = await live_layout(conn)
        partitions = partitions or stored
        relay = partitions != stored
        if relay:
            async with db.statement("rebuild_projector_running") as conn:
                if await projector_running(conn):
                    raise ProjectorRunning(stored, partitions)
        target = current + 1
        # A copy built past some live checkpoints is a different copy: its own name.
        name = f"rebuild_v{target}" + ("_relaid" if relay else "")
        bound = Bound.settled() if relay else Bound("live", stored)
        replays = side_by_side(db, version_schema(target), name, bound, workers,
                               chunk_size=chunk_size, upcasters=upcasters)
        if await _prepare(db, replays[0]):
            log.info("rebuild.resuming", schema=replays[0].schema)
        else:
            await create_copy(db, replays[0])
        for replay in replays:
            await replay.load_checkpoint()
        schema = replays[0].schema
        bar = progress(f"rebuild {schema}", await remaining(replays))
        log.info("rebuild.started", schema=schema, events=bar.total, workers=workers,
                 partitions=stored, relaid_in=partitions if relay else None)
        await replay_side_by_side(replays, bar, processes=processes)
        async with db.transaction("rebuild_indexes") as conn:
            await create_indexes(conn, schema)
        # What came meanwhile is little: not worth starting processes for.
        await replay_side_by_side(replays, bar, processes=False)
        bounds = await _switch(db, replays, target, bar, partitions if relay else None)
        bar.finish()
        log.info("rebuild.switched", schema=schema, checkpoints=[str(b) for b in bounds])
        dropped = await drop_schema(db, version_schema(current))
    return RebuildResult(target, schema, bar.done, time.monotonic() - started, max(bounds),
                         dropped, partitions, relay)


async def _switch(db: Database, replays: list[Replay], target: int, bar: Progress,
                  relay_in: int | None) -> list[Checkpoint]:
    """The switch; returns the live checkpoints the new copy stands at. ``relay_in``: lay
    the live checkpoints out anew in that many partitions, at the copy's place."""
    backoff = Backoff(0.05, 1.0)
    for attempt in range(1, SWITCH_ATTEMPTS + 1):
        try:
            async with db.transaction("rebuild_switch") as conn:
                view_lock_timeout = await _below_deadlock_timeout(conn)
                await conn.execute(f"SET LOCAL lock_timeout = '{CHECKPOINT_LOCK_TIMEOUT}'")
                await lock_checkpoint(conn, LIVE_CHECKPOINT)  # the projector waits here
                stored = await live_layout(conn)
                if relay_in is not None and await projector_running(conn):
                    raise ProjectorRunning(stored, relay_in)
                bounds = await replays[0].bound.read(conn)  # the layout changed: raises
                await catch_up_exactly(conn, replays, bounds, bar)
                if relay_in is not None:
                    await set_checkpoints(conn, LIVE_CHECKPOINT, bounds[0], relay_in)
                    await conn.execute(_OUTBOX_TO_PARTITIONS.format(
                        partition=partition_expression(relay_in).replace(
                            "data->>'chat_id'", "chat_id::text")))
                await conn.execute(f"SET LOCAL lock_timeout = '{view_lock_timeout}ms'")
                await point_views_at(conn, replays[0].schema)
                await set_current_version(conn, target)
                await conn.execute("DELETE FROM projector_checkpoints WHERE name = %s",
                                   (replays[0].checkpoint_name,))
            return bounds
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected) as exc:
            log.info("rebuild.switch_retry", attempt=attempt, reason=type(exc).__name__)
            for replay in replays:
                await replay.load_checkpoint()  # what the rolled-back catch-up did is undone
            await pause(backoff.next())
            await replay_side_by_side(replays, bar, processes=False)
    raise RuntimeError(f"could not switch to {replays[0].schema} in {SWITCH_ATTEMPTS} attempts"
                       " (readers or the projector held the read tables too long)")


async def _below_deadlock_timeout(conn: psycopg.AsyncConnection) -> int:
    """Milliseconds to wait for a lock that a reader may hold while it waits for one of
    ours: half the server's ``deadlock_timeout``, so the deadlock detector (which would
    cancel the reader's query) never runs first."""
    cur = await conn.execute("SELECT setting::int AS ms FROM pg_settings"
                             " WHERE name = 'deadlock_timeout'")
    return max(20, (await cur.fetchone())["ms"] // 2)


# --- the CLI ------------------------------------------------------------------------------


def _pool_for(settings: Settings, workers: int = 1):
    # the lock's connection, and three for each replay running as a task of this process
    return make_pool(settings, min_size=1, max_size=max(5, 3 * workers + 2),
                     name="talk-projections")


def run_with_pool(settings: Settings, command: str,
                   work: Callable[[Database], Awaitable[int]], workers: int = 1) -> int:
    """Run one ``talk projections`` command on a small pool; exit codes as
    :mod:`services.cli_support` says (3 if Postgres is down or another run holds the lock)."""
    async def main() -> int:
        await check_reachable(settings.require_database_url(), settings.db_connect_timeout)
        pool = _pool_for(settings, workers)
        await pool.open(wait=True, timeout=settings.db_connect_timeout * 2)
        try:
            return await work(Database(pool))
        except (ReplayBusy, ProjectorRunning) as exc:
            raise Unavailable(str(exc)) from None
        finally:
            await pool.close()

    return run_tool(f"projections {command}", lambda: asyncio.run(main()))


def run_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    async def rebuild(db: Database) -> int:
        result = await rebuild_read_model(db, partitions=settings.projector_partitions,
                                          workers=args.workers)
        print(f"rebuilt the read tables into {result.schema} from {result.events:,} events in"
              f" {result.seconds:.1f}s ({result.events_per_second:,.0f} events/s,"
              f" {args.workers} worker(s));"
              f" the query API reads {result.schema} from checkpoint {result.checkpoint}"
              + (f"; the live checkpoints are laid out anew in {result.partitions} partitions"
                 " there" if result.relaid else "")
              + ("" if result.old_schema_dropped else
                 "; the old copy is still in use and is dropped by the next rebuild"),
              flush=True)
        return EXIT_OK

    return run_with_pool(settings, "rebuild", rebuild, args.workers)

