"""Partitioned projection (TALK_PROJECTOR_PARTITIONS > 1): how projector processes share the
partitions through Postgres, and what a process runs for each partition it holds.

Each process is a member: it holds a member lock (a session-level advisory lock on a random
key of the members' range) on a connection of its own, and every ``REBALANCE_INTERVAL`` it
reads ``pg_locks`` there: how many members are alive and which partitions nobody holds. Its
share is ceil(N / members): below it, it takes free partitions; above it (a member joined),
it gives up its highest-numbered one after the batch in progress, one at a time, until it
is at its share.

A partition is held by the connection that applies its batches: a session-level advisory
lock on the partition's key, taken with ``pg_try_advisory_lock`` (so two processes never
apply one partition). A process that dies loses its connections and with them its locks;
the others see the partitions free at their next look and take them. The publisher of a
partition runs in the process that projects it, under a lock of its own, so two never
publish one partition's outbox at once, even while the partition moves.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
import structlog
from prometheus_client import Gauge

from projector.checkpoints import LAYOUT_CHANGED, LayoutMismatch, ensure_layout
from projector.outbox import Outbox
from projector.partitioning import partition_index_name, partition_index_sql
from projector.publisher import PROJECTED_CHANNEL, Publisher
from projector.read_schema import LIVE_CHECKPOINT
from projector.runner import (
    PARTITION_LAG_EVENTS,
    PARTITION_LAG_SECONDS,
    PROJECTION_LAG_EVENTS,
    PROJECTION_LAG_SECONDS,
    PROJECTOR_FAILURES,
    Projector,
)
from projector.wakeup import CHANNEL, Listener, Wakeup
from services.db import connect_dedicated
from services.retry import Backoff, pause
from services.settings import Settings
from services.tasks import cancel_and_wait

log = structlog.get_logger("talk.projector")

TALK_CLASS = 0x74616C6B  # "talk": the high 32 bits of every lock key below
MEMBERS = (0x6D000000, 0x6DFFFFFF)  # member locks: one random key of this range each
PARTITION_LOCKS = 0x70000000  # + (N << 12) + p: the projector of partition p of N
PUBLISHER_LOCKS = 0x71000000  # + (N << 12) + p: its publisher
INDEX_LOCK = (TALK_CLASS << 32) | 0x69000000  # one process builds the partition index
REBALANCE_INTERVAL = 0.5  # seconds between two looks at the members and the free partitions
GIVEN_UP_FOR = 3.0  # seconds a process leaves a partition it gave up to the others
RETRY_FIRST, RETRY_CAP = 0.2, 5.0

PARTITIONS_OWNED = Gauge("talk_projector_partitions_owned",
                         "Projection partitions this process holds.")
PARTITIONS_CONFIGURED = Gauge("talk_projector_partitions",
                              "TALK_PROJECTOR_PARTITIONS: the partitions of the projection.")


def partition_lock_key(partitions: int, partition: int) -> int:
    return (TALK_CLASS << 32) | PARTITION_LOCKS | (partitions << 12) | partition


def publisher_lock_key(partitions: int, partition: int) -> int:
    return (TALK_CLASS << 32) | PUBLISHER_LOCKS | (partitions << 12) | partition


# Advisory locks with a 64-bit key show in pg_locks as classid (high half), objid (low half)
# and objsubid 1.
_LOOK = """
WITH held AS (
  SELECT l.objid::text::bigint AS objid, l.pid FROM pg_locks l
   WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
     AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
     AND l.classid::text::bigint = %(cls)s),
partition_held AS (
  SELECT objid - %(p_lo)s AS partition, pid FROM held
   WHERE objid BETWEEN %(p_lo)s AND %(p_lo)s + %(n)s - 1)
SELECT (SELECT count(*) FROM held WHERE objid BETWEEN %(m_lo)s AND %(m_hi)s) AS members,
       ARRAY(SELECT partition FROM partition_held) AS held,
       ARRAY(SELECT count(*) FROM partition_held h JOIN pg_stat_activity a ON a.pid = h.pid
              GROUP BY a.application_name) AS counts,
       (SELECT a.application_name FROM partition_held h
          JOIN pg_stat_activity a ON a.pid = h.pid
         GROUP BY a.application_name ORDER BY count(*) DESC, a.application_name LIMIT 1)
         AS busiest
"""

PublisherFactory = Callable[[int, Listener], Publisher]


@dataclass
class _Holding:
    """One partition this process holds (or is trying to take)."""

    projector: Projector
    task: asyncio.Task | None = None
    publisher: Publisher | None = None
    owned: bool = False


@dataclass
class PartitionShare:
    """Runs until ``stop`` is set: takes this process's share of the partitions and runs a
    projector (and, with ``publisher_factory``, a publisher) for each it holds."""

    settings: Settings
    publisher_factory: PublisherFactory | None = None
    partitions: int = 0
    members: int = 0  # live members at the last look (0: not a member yet)
    target: int = 0  # this process's share at the last look
    last_error: str | None = None  # a layout mismatch or a failing partition
    layout_changed: bool = False  # a batch found the checkpoints laid out anew
    member_id: int = 0  # the low half of this member's lock key
    give_one_up: bool = False  # the busiest member gives one to a member below its share
    holdings: dict[int, _Holding] = field(default_factory=dict)
    _not_before: dict[int, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.partitions = self.partitions or self.settings.projector_partitions
        self.url = self.settings.require_database_url()
        PARTITIONS_OWNED.set(0)
        PROJECTION_LAG_EVENTS.set_function(lambda: sum(h.projector.lag[0] for h in self._owned()))
        PROJECTION_LAG_SECONDS.set_function(
            lambda: max((h.projector.lag[1] for h in self._owned()), default=0.0))

    def _owned(self) -> list[_Holding]:
        return [h for h in self.holdings.values() if h.owned]

    @property
    def owned(self) -> list[int]:
        return sorted(p for p, h in self.holdings.items() if h.owned)

    # --- readiness (the questions projector/service.py's Projection asks) ---------------

    @property
    def publishes(self) -> bool:
        return self.publisher_factory is not None

    @property
    def uses_broker(self) -> bool:
        return self.publishes and bool(self.settings.amqp_url)

    async def check(self) -> None:
        if self.last_error is not None:
            raise RuntimeError(self.last_error)
        for holding in self._owned():
            await holding.projector.check_healthy()

    async def check_broker(self) -> None:
        for holding in self._owned():
            if holding.publisher is not None:
                await holding.publisher.check_broker()

    def check_publish_lag(self, limit: int) -> None:
        for holding in self._owned():
            if holding.publisher is not None:
                holding.publisher.check_lag(limit)

    # --- the member's loop ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        backoff = Backoff(RETRY_FIRST, RETRY_CAP)
        async with Listener(self.url, CHANNEL) as events, \
                Listener(self.url, PROJECTED_CHANNEL) as projected:
            try:
                while not stop.is_set():
                    try:
                        await self._run_member(stop, events, projected)
                    except asyncio.CancelledError:
                        raise
                    except LayoutMismatch as exc:
                        self.last_error = str(exc)
                        log.error("projector.layout_mismatch", error=str(exc))
                        await pause(backoff.next(cap=30.0), stop)
                    except (psycopg.Error, OSError) as exc:
                        delay = backoff.next()
                        log.warning("projector.member_connection_lost", error=str(exc),
                                    retry_in=delay)
                        await pause(delay, stop)
                    finally:
                        self.members = 0
            finally:  # each holder ends its batch and its publisher on stop
                tasks = [h.task for h in self.holdings.values() if h.task is not None]
                if stop.is_set():
                    await asyncio.gather(*tasks, return_exceptions=True)
                else:
                    for task in tasks:
                        await cancel_and_wait(task)

    async def _run_member(self, stop: asyncio.Event, events: Listener,
                          projected: Listener) -> None:
        async with await connect_dedicated(self.settings, "talk-projector-member") as conn:
            self.member_id = await _join(conn)
            await _ensure_partition_index(conn, self.partitions)
            await ensure_layout(conn, LIVE_CHECKPOINT, self.partitions)
            self.last_error = None
            log.info("projector.member", partitions=self.partitions)
            while not stop.is_set():
                if self.layout_changed:
                    self.layout_changed = False
                    await ensure_layout(conn, LIVE_CHECKPOINT, self.partitions)
                cur = await conn.execute(_LOOK, {
                    "cls": TALK_CLASS, "m_lo": MEMBERS[0], "m_hi": MEMBERS[1],
                    "p_lo": PARTITION_LOCKS | (self.partitions << 12), "n": self.partitions})
                row = await cur.fetchone()
                self.members = max(1, row["members"])
                self.target = math.ceil(self.partitions / self.members)
                self._even_out(row)
                self._take_free(set(row["held"]), stop, events, projected)
                await pause(REBALANCE_INTERVAL, stop)

    def _even_out(self, look: dict) -> None:
        """ceil(N / members) alone can leave a member with less than its fair part while the
        others are at theirs (4 partitions over 3 members: 2, 2, 0). When no partition is
        free and some member holds fewer than N // members, the member holding the most (the
        first by name among equals) gives one up, and leaves it for GIVEN_UP_FOR seconds so
        that the one below its share takes it: 2, 1, 1."""
        counts = list(look["counts"]) + [0] * max(0, self.members - len(look["counts"]))
        fair = self.partitions // self.members
        self.give_one_up = (len(look["held"]) == self.partitions and min(counts) < fair
                            and look["busiest"] == self._holder_name()
                            and len(self.owned) > fair)

    def _holder_name(self) -> str:
        """The application name of this member's partition connections."""
        return f"talk-partition-{self.member_id:08x}"

    def _take_free(self, held: set[int], stop: asyncio.Event, events: Listener,
                   projected: Listener) -> None:
        now = time.monotonic()
        free = [p for p in range(self.partitions)
                if p not in held and p not in self.holdings and self._not_before.get(p, 0) <= now]
        random.shuffle(free)  # members that look at once try different ones first
        while free and len(self.holdings) < self.target:
            p = free.pop()
            holding = _Holding(self._projector(p))
            self.holdings[p] = holding
            holding.task = asyncio.create_task(self._hold(p, holding, stop, events, projected),
                                               name=f"partition-{p}")

    def should_release(self, partition: int) -> bool:
        """Whether this process holds more than its share (or gives one up to a member below
        it) and ``partition`` is the one to give up (its highest-numbered)."""
        owned = self.owned
        return ((len(owned) > self.target > 0 or self.give_one_up) and bool(owned)
                and partition == owned[-1])

    def _projector(self, partition: int) -> Projector:
        if self.publisher_factory is None:
            return Projector(self.settings, partition=partition, partitions=self.partitions)
        outbox = Outbox(partition)
        return Projector(self.settings, partition=partition, partitions=self.partitions,
                         before_batch=outbox.before_batch, after_batch=outbox.after_batch)

    # --- one partition -------------------------------------------------------------------

    async def _hold(self, p: int, holding: _Holding, stop: asyncio.Event, events: Listener,
                    projected: Listener) -> None:
        projector = holding.projector
        publishing = asyncio.Event()  # set: the partition's publisher stops
        publisher_task: asyncio.Task | None = None
        try:
            async with await connect_dedicated(self.settings, self._holder_name()) as conn:
                cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok",
                                         (partition_lock_key(self.partitions, p),))
                if not (await cur.fetchone())["ok"]:
                    return
                holding.owned = True
                PARTITIONS_OWNED.set(len(self.owned))
                log.info("projector.partition_taken", partition=p, owned=self.owned)
                if self.publisher_factory is not None:
                    holding.publisher = self.publisher_factory(p, projected)
                    holding.publisher.follow(projector)
                    publisher_task = asyncio.create_task(holding.publisher.run(publishing),
                                                         name=f"publisher-{p}")
                projector._set_active(True)
                async with Wakeup(listener=events, partition=p, partitions=self.partitions,
                                  stop=stop) as wakeup:
                    await projector.project(conn, stop, wakeup,
                                            release=lambda: self.should_release(p))
                if not stop.is_set():  # given up: left to the others for a while
                    self.give_one_up = False
                    self._not_before[p] = time.monotonic() + GIVEN_UP_FOR
                    log.info("projector.partition_released", partition=p)
        except asyncio.CancelledError:
            raise
        except (psycopg.Error, OSError) as exc:
            if getattr(exc, "sqlstate", None) == LAYOUT_CHANGED:
                self.layout_changed = True  # the member's next look says why, and stops
            log.warning("projector.partition_lost", partition=p, error=str(exc))
            self._not_before[p] = time.monotonic() + RETRY_FIRST
        except Exception as exc:
            # A batch that cannot be applied: said loudly, readiness fails until it applies;
            # the partition is retried later (here or by another process).
            projector.last_error = self.last_error = f"partition {p}: {type(exc).__name__}: {exc}"
            PROJECTOR_FAILURES.inc()
            log.exception("projector.batch_failed", partition=p,
                          checkpoint=str(projector.checkpoint))
            self._not_before[p] = time.monotonic() + 5.0
        finally:
            publishing.set()
            if publisher_task is not None:
                await asyncio.gather(publisher_task, return_exceptions=True)
            projector._set_active(False)
            self.holdings.pop(p, None)
            PARTITIONS_OWNED.set(len(self.owned))
            for gauge in (PARTITION_LAG_EVENTS, PARTITION_LAG_SECONDS):
                try:
                    gauge.remove(str(p))
                except KeyError:
                    pass


async def _join(conn: psycopg.AsyncConnection) -> int:
    """Become a member: take a free member lock (a random key of the members' range);
    returns the key's low half, the member's id."""
    while True:
        member_id = random.randint(*MEMBERS)
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s) AS ok",
                                 ((TALK_CLASS << 32) | member_id,))
        if (await cur.fetchone())["ok"]:
            return member_id


async def _ensure_partition_index(conn: psycopg.AsyncConnection, partitions: int) -> None:
    """Build the index each partition's read of the store uses, if it is missing (one
    process builds it, without blocking writes; an invalid one left by a build that died is
    built again)."""
    name = partition_index_name(partitions)
    check = "SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = to_regclass(%s)"
    row = await (await conn.execute(check, (name,))).fetchone()
    if row is not None and row["valid"]:
        return
    await conn.execute("SELECT pg_advisory_lock(%s)", (INDEX_LOCK,))
    try:
        row = await (await conn.execute(check, (name,))).fetchone()
        if row is not None and not row["valid"]:
            await conn.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
        if row is None or not row["valid"]:
            log.info("projector.building_partition_index", index=name)
            await conn.execute(partition_index_sql(partitions))
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (INDEX_LOCK,))
