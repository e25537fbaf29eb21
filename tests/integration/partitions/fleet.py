"""A fleet of ``talk projector`` processes sharing ``TALK_PROJECTOR_PARTITIONS`` partitions of
the test's database: started (each with its own metrics port), killed (SIGKILL) or stopped
(SIGTERM), what each says it owns (``talk_projector_partitions_owned`` on its /metrics) and
what it holds in fact (the partitions' advisory locks in ``pg_locks``, matched to the process
by its connections' client ports)."""

from __future__ import annotations

import asyncio
import signal
from dataclasses import dataclass, field
from math import ceil

import aiohttp
import psycopg
from prometheus_client.parser import text_string_to_metric_families
from psycopg.rows import dict_row

from tests.e2e.processes import TalkProcess, clean_env, free_port
from tests.integration.backends import local_tcp_ports
from tests.integration.partitions.locks import key_of, lock_keys
from tests.integration.projector.processes import ROOT
from tests.support import TEST_SECRET, wait_until

OWNED = "talk_projector_partitions_owned"
PARTITION_LAG = "talk_projection_partition_lag_events"

# Every granted advisory lock of this database, with the backend and its client's port.
_ADVISORY = (
    "SELECT l.classid::bigint AS classid, l.objid::bigint AS objid, l.objsubid, l.pid,"
    "       a.client_port"
    "  FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
    " WHERE l.locktype = 'advisory' AND l.granted AND l.database = ("
    "       SELECT oid FROM pg_database WHERE datname = current_database())"
)


def even_share(partitions: int, processes: int) -> list[int]:
    """What each of ``processes`` owns once they share ``partitions`` evenly, largest first."""
    base, more = divmod(partitions, processes)
    return [base + 1] * more + [base] * (processes - more)


@dataclass(eq=False)
class Member:
    """One ``talk projector`` process of the fleet."""

    proc: TalkProcess
    port: int
    index: int

    @property
    def pid(self) -> int:
        return self.proc.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.running

    def __str__(self) -> str:
        return f"projector #{self.index} (pid {self.pid})"

    async def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        """Its /metrics: samples by name, each (labels, value)."""
        async with aiohttp.ClientSession() as session, \
                session.get(f"http://127.0.0.1:{self.port}/metrics") as resp:
            assert resp.status == 200, f"{self}: /metrics answered {resp.status}"
            text = await resp.text()
        samples: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.setdefault(sample.name, []).append((sample.labels, sample.value))
        return samples

    async def owned(self) -> int:
        """What its gauge says it owns."""
        samples = (await self.metrics()).get(OWNED)
        assert samples, f"{self}: no {OWNED} on /metrics"
        return int(samples[0][1])

    async def partition_lag(self) -> dict[int, float]:
        """Its ``talk_projection_partition_lag_events`` by partition."""
        return {int(labels["partition"]): value
                for labels, value in (await self.metrics()).get(PARTITION_LAG, [])}


@dataclass
class Fleet:
    """Projector processes on ``url`` with ``partitions`` partitions; ``talk`` adds ``TALK_*``
    settings (without the prefix), e.g. the broker's."""

    url: str
    partitions: int
    batch_size: int = 50
    talk: dict[str, str] = field(default_factory=dict)
    members: list[Member] = field(default_factory=list)

    @property
    def publishing(self) -> bool:
        return bool(self.talk.get("amqp_url"))

    @property
    def live(self) -> list[Member]:
        return [m for m in self.members if m.running]

    async def start(self, count: int = 1) -> list[Member]:
        """Start ``count`` processes at once; returns them once each answers /metrics."""
        return list(await asyncio.gather(*(self._start_one() for _ in range(count))))

    async def _start_one(self) -> Member:
        port = free_port()
        env = clean_env(database_url=self.url, jwt_secret=TEST_SECRET, host="127.0.0.1",
                        projector_port=str(port), projector_partitions=str(self.partitions),
                        projector_batch_size=str(self.batch_size), projector_poll_interval="0.1",
                        log_level="WARNING", **self.talk)
        member = Member(await TalkProcess.start("projector", env=env, cwd=ROOT), port,
                        len(self.members))
        self.members.append(member)

        async def answering() -> bool:
            assert member.running, f"{member} ended\n{member.proc.output()}"
            try:
                await member.owned()
            except aiohttp.ClientError:
                return False
            return True

        await wait_until(answering, timeout=30, what=f"{member} answering /metrics")
        return member

    async def kill(self, member: Member) -> None:
        """SIGKILL ``member`` and wait until none of its connections is left in Postgres.

        Its connections are known by their server processes, found by client port before
        the kill: after it, a port of the dead process may be taken at once by another
        process's new connection to the same server (loopback TIME_WAIT reuse), which
        would then look like one of the dead process's."""
        ports = local_tcp_ports(member.pid)
        async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
            cur = await conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND client_port = ANY(%s)", (list(ports),))
            backends = [row[0] for row in await cur.fetchall()]
        member.proc.send(signal.SIGKILL)
        assert await member.proc.exit_code(10) == -signal.SIGKILL

        async def gone() -> bool:
            async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                cur = await conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)", (backends,))
                return (await cur.fetchone())[0] == 0

        await wait_until(gone, what=f"the connections of the killed {member} to end")

    async def stop(self, member: Member) -> None:
        """SIGTERM ``member``: it hands its partitions back and exits cleanly."""
        code = await member.proc.stop(signal.SIGTERM, timeout=20)
        assert code == 0, f"{member} exited {code}\n{member.proc.output()}"

    async def close(self) -> None:
        for member in self.members:
            await member.proc.kill()

    async def shares(self) -> dict[Member, int]:
        """What each live process's gauge says it owns."""
        live = self.live
        return dict(zip(live, await asyncio.gather(*(m.owned() for m in live)), strict=True))

    async def lock_holders(self, kind: str = "projector") -> dict[int, list[Member | int]]:
        """For each partition whose ``kind`` lock (its projector's or its publisher's) is
        held: the holders (the fleet's member whose connection holds it, or the backend pid
        when no live member owns that connection)."""
        keys = lock_keys(self.partitions)
        by_port = {port: m for m in self.live for port in local_tcp_ports(m.pid)}
        async with await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, row_factory=dict_row) as conn:
            rows = await (await conn.execute(_ADVISORY)).fetchall()
        holders: dict[int, list[Member | int]] = {}
        for row in rows:
            lock = keys.get(key_of(row["classid"], row["objid"], row["objsubid"]))
            if lock is not None and lock[0] == kind:
                holders.setdefault(lock[1], []).append(by_port.get(row["client_port"], row["pid"]))
        return holders

    async def evenly_shared(self) -> str | None:
        """None once the live processes share the partitions evenly, their gauges say so,
        and every partition's lock is held by exactly one backend, of the process whose gauge
        counts it (and, when they publish, its publisher's lock by that process too); else
        what is still off."""
        shares = await self.shares()
        want = even_share(self.partitions, len(shares))
        got = sorted(shares.values(), reverse=True)
        if got != want:
            return f"gauges {got}, want {want}"
        holders = await self.lock_holders()
        if sorted(holders) != list(range(self.partitions)):
            return f"locks held for partitions {sorted(holders)}"
        held: dict[Member, int] = {}
        for partition, by in holders.items():
            if len(by) != 1 or not isinstance(by[0], Member):
                return f"partition {partition}'s lock held by {[str(b) for b in by]}"
            held[by[0]] = held.get(by[0], 0) + 1
        if held != {m: n for m, n in shares.items() if n}:
            return (f"locks held {sorted((str(m), n) for m, n in held.items())}, gauges"
                    f" {sorted((str(m), n) for m, n in shares.items())}")
        if self.publishing:
            publishers = await self.lock_holders("publisher")
            for partition, by in holders.items():
                if publishers.get(partition) != by:
                    return (f"partition {partition} projected by {by[0]}, published by"
                            f" {[str(b) for b in publishers.get(partition, [])]}")
        return None

    async def wait_evenly_shared(self, timeout: float = 10.0) -> dict[Member, int]:
        """Wait for :meth:`evenly_shared`; returns each live process's share."""
        last: list[str | None] = [None]

        async def settled() -> bool:
            last[0] = await self.evenly_shared()
            return last[0] is None

        try:
            await wait_until(settled, timeout=timeout, interval=0.1,
                             what=f"{len(self.live)} processes sharing {self.partitions} partitions")
        except AssertionError as exc:
            raise AssertionError(f"{exc}: {last[0]}") from None
        shares = await self.shares()
        assert max(shares.values()) <= ceil(self.partitions / len(shares))
        return shares
