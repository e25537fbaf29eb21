"""The projector: follows the event store and applies events to the read tables in
batches, each batch in one transaction with its checkpoint.

With one partition (TALK_PROJECTOR_PARTITIONS=1), one active instance does it all.
Leadership is a session-level advisory lock held by the worker connection: a standby
instance retries the lock and takes over as soon as the active one's connection is gone.
With N partitions, a :class:`Projector` follows one partition (the talks whose
``talk_partition`` is its own), on a connection holding that partition's lock, for as long
as its holder (projector/partition_share.py) keeps it. Any database error drops the
connection (and with it the lock and the open batch) and starts over from the stored
checkpoint, so an effect is never applied twice.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable, Sequence

import psycopg
import structlog
from prometheus_client import Counter, Gauge

from events.envelope import Checkpoint, StoredEvent
from events.postgres_store import read_all_on, read_partition_on
from projector.checkpoints import ensure_layout, load_checkpoint, save_checkpoint
from projector.partitioning import partition_expression
from projector.read_model import apply_events
from projector.wakeup import Wakeup
from services.db import connect_dedicated
from services.leader_lock import acquire_leader_lock
from services.retry import Backoff, pause
from services.settings import Settings

log = structlog.get_logger("talk.projector")

PROJECTOR_LOCK = 0x74616C6B_70726F6A  # "talkproj"
LAG_INTERVAL = 1.0  # seconds between lag measurements while catching up
# While committed events wait behind an older transaction still open (see _HELD_BACK), read
# again after this long, doubling up to the cap, instead of waiting for a wake-up or a poll.
HELD_BACK_FIRST, HELD_BACK_CAP = 0.001, 0.05

# Committed events after the checkpoint that the read may not return yet: they follow, in the
# global order, a transaction still open (anywhere on the server: it holds the horizon back).
# Nothing NOTIFYs when that transaction ends if it appended nothing (a write elsewhere, the
# publisher's DELETE), so the projector reads again soon instead of waiting for a wake-up.
_HELD_BACK = (
    "SELECT EXISTS (SELECT 1 FROM events WHERE (tx_id, position) > (%s::text::xid8, %s)"
    " AND tx_id >= pg_snapshot_xmin(pg_current_snapshot())) AS held"
)


@functools.cache  # the text for each number of partitions, built once
def _held_back_in_partition(partitions: int) -> str:
    return ("SELECT EXISTS (SELECT 1 FROM events"
            f" WHERE {partition_expression(partitions)} = %s"
            " AND (tx_id, position) > (%s::text::xid8, %s)"
            " AND tx_id >= pg_snapshot_xmin(pg_current_snapshot())) AS held")


@functools.cache  # the text for each number of partitions, built once
def _pending_in_partition(partitions: int) -> str:
    return ("SELECT count(*) AS n, extract(epoch FROM now() - min(recorded_at)) AS age FROM ("
            f" SELECT recorded_at FROM events WHERE {partition_expression(partitions)} = %s"
            " AND (tx_id, position) > (%s::text::xid8, %s) LIMIT 100000) pending")


RETRY_FIRST, RETRY_CAP = 0.2, 5.0  # seconds before reconnecting after a lost connection
FAILED_BATCH_RETRY_CAP = 30.0  # a batch that cannot be applied is retried less often

EVENTS_PROJECTED = Counter("talk_events_projected_total", "Events applied to the read tables.")
PROJECTOR_FAILURES = Counter(
    "talk_projector_failures_total", "Batches that failed other than by a lost connection.")
PROJECTOR_ACTIVE = Gauge("talk_projector_active",
                         "Projector locks this process holds (1 or 0 with one partition).")
STORE_READS = Counter("talk_projector_reads_total",
                      "Reads of the store by the active projector.", ["outcome"])
PROJECTION_LAG_EVENTS = Gauge("talk_projection_lag_events", "Events stored but not yet projected.")
PROJECTION_LAG_SECONDS = Gauge(
    "talk_projection_lag_seconds", "Age of the oldest event not yet projected (0 when caught up)."
)
PARTITION_LAG_EVENTS = Gauge(
    "talk_projection_partition_lag_events",
    "Events of a partition stored but not yet projected (partitions this process holds).",
    ["partition"])
PARTITION_LAG_SECONDS = Gauge(
    "talk_projection_partition_lag_seconds",
    "Age of a partition's oldest event not yet projected (partitions this process holds).",
    ["partition"])

BatchHook = Callable[[psycopg.AsyncConnection, Sequence[StoredEvent]], Awaitable[None]]


class Projector:
    """Runs until ``stop`` is set. ``before_batch`` and ``after_batch`` (optional) run inside
    each batch's transaction, before the read-table writes (it may read) and after them (in
    pipeline mode: it may only write): the place for an outbox."""

    def __init__(self, settings: Settings, *, name: str = "read_model",
                 lock_key: int = PROJECTOR_LOCK, before_batch: BatchHook | None = None,
                 after_batch: BatchHook | None = None, partition: int = 0,
                 partitions: int | None = None) -> None:
        self.settings = settings
        self.partition = partition
        self.partitions = settings.projector_partitions if partitions is None else partitions
        self.url = settings.require_database_url()
        self.name = name
        self.lock_key = lock_key
        self.before_batch = before_batch
        self.after_batch = after_batch
        self.active = asyncio.Event()
        self.checkpoint = Checkpoint()
        self.applied = asyncio.Event()  # set after each committed batch
        # called after each committed batch: how a publisher in this process is woken
        self.on_commit: list[Callable[[], None]] = []
        self.reads = 0  # how many times the store was read (tests await progress on it)
        self.held_back = False  # the last read left committed events behind an open transaction
        self.last_error: str | None = None  # cleared by the next committed batch
        self.lag: tuple[int, float] = (0, 0.0)  # events and seconds, as last measured

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff(RETRY_FIRST, RETRY_CAP)
        async with Wakeup(self.url, stop=stop) as wakeup:
            while not stop.is_set():
                try:
                    await self._run_connected(stop, wakeup)
                    backoff.reset()
                except asyncio.CancelledError:
                    raise
                except (psycopg.Error, OSError) as exc:  # /readyz reports Postgres itself
                    delay = backoff.next()
                    log.warning("projector.connection_lost", error=str(exc), retry_in=delay)
                    await pause(delay, stop)
                except Exception as exc:
                    # An event that cannot be applied (e.g. no upcaster for its schema
                    # version): the batch rolled back; say so loudly, fail readiness, retry.
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    PROJECTOR_FAILURES.inc()
                    delay = backoff.next(cap=FAILED_BATCH_RETRY_CAP)
                    log.exception("projector.batch_failed", checkpoint=str(self.checkpoint),
                                  retry_in=delay)
                    await pause(delay, stop)
                finally:
                    self._set_active(False)

    async def check_healthy(self) -> None:
        """Readiness: fails while the last batch attempt failed (a standby is healthy)."""
        if self.last_error is not None:
            raise RuntimeError(f"projector failing: {self.last_error}")

    def _set_active(self, active: bool) -> None:
        # A count: a process holding several partitions has one instance active per partition.
        if active and not self.active.is_set():
            PROJECTOR_ACTIVE.inc()
            self.active.set()
        elif not active and self.active.is_set():
            PROJECTOR_ACTIVE.dec()
            self.active.clear()

    async def _run_connected(self, stop: asyncio.Event, wakeup: Wakeup) -> None:
        async with await connect_dedicated(self.settings, f"talk-projector-{self.name}") as conn:
            if not await acquire_leader_lock(
                    conn, self.lock_key, stop, poll_interval=self.settings.projector_poll_interval,
                    log=log, event="projector.standby", name=self.name):
                return
            await ensure_layout(conn, self.name, self.partitions)
            self._set_active(True)
            log.info("projector.active", name=self.name)
            await self.project(conn, stop, wakeup)

    async def project(self, conn: psycopg.AsyncConnection, stop: asyncio.Event,
                      wakeup: Wakeup, release: Callable[[], bool] | None = None) -> None:
        """Apply batches on ``conn`` (which holds the lock) until ``stop`` is set (or, for a
        partition, until ``release()`` says to give it up)."""
        self.checkpoint = await load_checkpoint(conn, self.name, self.partition)
        batch_size = self.settings.projector_batch_size
        lag_due = 0.0
        held_back_wait = HELD_BACK_FIRST
        while not stop.is_set() and not (release is not None and release()):
            n = await self.project_batch(conn, batch_size)
            if n < batch_size and not self.held_back:
                # Caught up: the read saw every event stored, so nothing is waiting (no
                # query needed; a small batch must not pay for measuring a backlog).
                self._set_lag(0, 0.0)
                held_back_wait = HELD_BACK_FIRST
                await wakeup.wait(self.settings.projector_poll_interval)
                continue
            if time.monotonic() >= lag_due:
                # A backlog, or events held back: measured every LAG_INTERVAL (bounded,
                # not free).
                await self._update_lag(conn)
                lag_due = time.monotonic() + LAG_INTERVAL
            if n < batch_size:  # held back: read again soon (or when woken)
                await wakeup.wait(held_back_wait)
                held_back_wait = min(2 * held_back_wait, HELD_BACK_CAP)
            else:
                held_back_wait = HELD_BACK_FIRST

    async def project_batch(self, conn: psycopg.AsyncConnection, limit: int) -> int:
        """Read and apply one batch in one transaction; returns how many events it held."""
        cp = (str(self.checkpoint.tx_id), self.checkpoint.position)
        async with conn.pipeline():  # the read and the held-back check: one round trip
            if self.partitions == 1:
                held = await conn.execute(_HELD_BACK, cp)
                events = await read_all_on(conn, self.checkpoint, limit)
            else:
                held = await conn.execute(_held_back_in_partition(self.partitions),
                                          (self.partition, *cp))
                events = await read_partition_on(conn, self.checkpoint, limit, self.partition,
                                                 self.partitions)
            self.held_back = bool((await held.fetchone())["held"])
        self.reads += 1
        # held_back: committed events wait behind an older transaction still open
        STORE_READS.labels("held_back" if self.held_back else "events" if events else
                           "empty").inc()
        if not events:
            self.last_error = None  # caught up: nothing is failing
            return 0
        last = events[-1].checkpoint
        # One pipeline for the whole transaction: two round trips to the server (the rows
        # ``before_batch`` reads, then everything else up to the COMMIT), whatever the batch's
        # size. BEGIN and COMMIT are sent as statements (``conn.transaction()`` would sync the
        # pipeline twice more). Any failure leaves the transaction open and ends with the
        # connection (the caller drops it), which rolls it back.
        async with conn.pipeline():
            await conn.execute("BEGIN")
            # First, the checkpoint's row: its UPDATE locks it (see projector/checkpoints.py).
            await save_checkpoint(conn, self.name, last, self.partition, self.partitions)
            if self.before_batch is not None:
                await self.before_batch(conn, events)
            await apply_events(conn, events)
            if self.after_batch is not None:
                await self.after_batch(conn, events)
            await conn.execute("SELECT pg_notify('talk_projected', %s)", (str(last),))
            await conn.execute("COMMIT")
        self.checkpoint = last
        self.last_error = None
        EVENTS_PROJECTED.inc(len(events))
        self.applied.set()
        self.applied.clear()
        for committed in self.on_commit:
            committed()
        return len(events)

    async def _update_lag(self, conn: psycopg.AsyncConnection) -> None:
        cp = (str(self.checkpoint.tx_id), self.checkpoint.position)
        if self.partitions == 1:
            cur = await conn.execute(
                "SELECT count(*) AS n, extract(epoch FROM now() - min(recorded_at)) AS age FROM ("
                " SELECT recorded_at FROM events WHERE (tx_id, position) > (%s::text::xid8, %s)"
                " LIMIT 100000) pending", cp)
        else:
            cur = await conn.execute(_pending_in_partition(self.partitions),
                                     (self.partition, *cp))
        row = await cur.fetchone()
        self._set_lag(row["n"], float(row["age"] or 0.0))

    def _set_lag(self, events: int, seconds: float) -> None:
        """The lag gauges: the process's own with one partition; per partition with N (the
        process's overall figures are then the worst of its partitions, see
        projector/partition_share.py)."""
        self.lag = (events, seconds)
        if self.partitions == 1:
            PROJECTION_LAG_EVENTS.set(events)
            PROJECTION_LAG_SECONDS.set(seconds)
        else:
            PARTITION_LAG_EVENTS.labels(str(self.partition)).set(events)
            PARTITION_LAG_SECONDS.labels(str(self.partition)).set(seconds)
