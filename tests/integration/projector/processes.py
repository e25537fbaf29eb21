"""``talk projector`` processes for the crash tests: started against the test's database,
and killed (SIGKILL) at a chosen point: in the middle of a batch, its read-table writes done
and not committed (held there by a gate the test opens and closes)."""

from __future__ import annotations

import signal
from collections.abc import Iterable
from functools import partial
from pathlib import Path

import psycopg
from psycopg.rows import dict_row

from events.envelope import Checkpoint, StoredEvent
from events.postgres_store import read_all_on
from projector.runner import PROJECTOR_LOCK
from tests.e2e.processes import TalkProcess, clean_env, free_port
from tests.integration.backends import backend_alive, local_tcp_ports, lock_holder
from tests.support import TEST_SECRET, wait_until

ROOT = Path(__file__).resolve().parents[3]
APPLICATION = "talk-projector-read_model"


async def start_projector(url: str, batch_size: int, **talk: str) -> TalkProcess:
    env = clean_env(database_url=url, jwt_secret=TEST_SECRET, host="127.0.0.1",
                    projector_port=str(free_port()), projector_batch_size=str(batch_size),
                    projector_poll_interval="0.1", log_level="WARNING", **talk)
    proc = await TalkProcess.start("projector", env=env, cwd=ROOT)
    await wait_until(lambda: _connected(url, proc), timeout=30,
                     what=f"projector process {proc.proc.pid} connected")
    return proc


async def _connected(url: str, proc: TalkProcess) -> bool:
    assert proc.running, f"the projector process ended\n{proc.output()}"
    ports = local_tcp_ports(proc.proc.pid)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT client_port FROM pg_stat_activity WHERE application_name = %s"
            " AND datname = current_database()", (APPLICATION,))
        return any(row[0] in ports for row in await cur.fetchall())


async def active_one(url: str, procs: Iterable[TalkProcess],
                     key: int = PROJECTOR_LOCK) -> TalkProcess | None:
    """The process whose connection holds the lock ``key`` (the projector's by default)."""
    holder = await lock_holder(url, key)
    if holder is None:
        return None
    for proc in procs:
        if proc.running and holder["client_port"] in local_tcp_ports(proc.proc.pid):
            return proc
    return None


async def committed_checkpoint(url: str) -> Checkpoint:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        cur = await conn.execute("SELECT last_tx::text::bigint AS tx, last_pos FROM"
                                 " projector_checkpoints WHERE name = 'read_model'")
        row = await cur.fetchone()
        return Checkpoint(row["tx"], row["last_pos"]) if row else Checkpoint()


async def head(url: str) -> Checkpoint:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        cp = last = Checkpoint()
        while batch := await read_all_on(conn, cp, 10_000):
            cp = last = batch[-1].checkpoint
        return last


async def _writing_read_tables(url: str, pid: int, schema: str) -> bool:
    """Whether backend ``pid``'s open transaction has written to the read tables."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE l.pid = %s AND l.mode = 'RowExclusiveLock' AND n.nspname = %s", (pid, schema))
        return (await cur.fetchone())[0] > 0


GATE_KEY = 0x74657374_67617465  # "testgate"


async def install_commit_gate(url: str) -> None:
    """A trigger (in the test's own database) on the projector's checkpoint update, deferred
    to the commit of the batch's transaction, so it runs after every write of the batch
    whatever their order: while the test holds the gate, a batch that would take the count
    of applied events to ``test_commit_gate.at`` or beyond waits there, applied whole and
    not committed. Backends here check for a vanished client every 50 ms, so the backend of a
    killed process ends by itself even while it waits at the gate."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f"""
            CREATE TABLE test_commit_gate (at bigint NOT NULL);
            INSERT INTO test_commit_gate VALUES (9223372036854775807);
            CREATE FUNCTION test_commit_gate() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF (SELECT count(*) FROM events WHERE (tx_id, position) <= (NEW.last_tx, NEW.last_pos))
                 >= (SELECT at FROM test_commit_gate) THEN
                PERFORM pg_advisory_xact_lock_shared({GATE_KEY});
              END IF;
              RETURN NEW;
            END $$;
            CREATE CONSTRAINT TRIGGER test_commit_gate AFTER UPDATE ON projector_checkpoints
            DEFERRABLE INITIALLY DEFERRED
            FOR EACH ROW WHEN (NEW.name = 'read_model') EXECUTE FUNCTION test_commit_gate();
        """)
        dbname = conn.info.dbname
        await conn.execute(f'ALTER DATABASE "{dbname}" SET client_connection_check_interval = 50')


class CommitGate:
    """While entered, a projector batch that reaches :meth:`hold_at` events waits before
    its checkpoint update."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: psycopg.AsyncConnection | None = None

    async def __aenter__(self) -> CommitGate:
        self.conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True)
        await self.conn.execute("SELECT pg_advisory_lock(%s)", (GATE_KEY,))
        return self

    async def __aexit__(self, *exc) -> None:
        assert self.conn is not None
        await self.conn.close()  # the lock goes with the session

    async def hold_at(self, events: int | None) -> None:
        """Hold the batch that reaches ``events`` applied events (None: hold none)."""
        assert self.conn is not None
        await self.conn.execute("UPDATE test_commit_gate SET at = %s",
                                (events if events is not None else 2**63 - 1,))

    async def waiting_batch(self, pid: int) -> bool:
        """Whether backend ``pid`` waits at this gate."""
        assert self.conn is not None
        cur = await self.conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND wait_event_type = 'Lock'"
            " AND %s = ANY(pg_blocking_pids(pid))", (pid, self.conn.info.backend_pid))
        return (await cur.fetchone())[0] > 0


async def kill_at_commit(url: str, proc: TalkProcess, gate: CommitGate, *, batch_size: int,
                         schema: str, next_gap: int | None) -> tuple[Checkpoint, list[StoredEvent]]:
    """SIGKILL ``proc`` once it is the active projector and its batch, applied to the read
    tables, waits at ``gate`` to be committed. First the gate moves ``next_gap`` events past
    that batch (None: it holds no more batches), so the next projector commits it again and
    more before its batch is held. Returns the committed checkpoint and the batch (the
    events after it, as many as a batch holds)."""
    pid = proc.proc.pid
    await wait_until(partial(_is_active, url, proc), timeout=15,
                     what=f"process {pid} the active projector")
    holder = await lock_holder(url, PROJECTOR_LOCK)
    assert holder is not None
    await wait_until(partial(gate.waiting_batch, holder["pid"]), timeout=60,
                     what="its batch applied and waiting to commit")
    assert await _writing_read_tables(url, holder["pid"], schema), "the batch wrote nothing"
    committed = await committed_checkpoint(url)
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        batch = await read_all_on(conn, committed, batch_size)
    through = await _events_through(url, batch[-1].checkpoint)
    # The batch waiting now has passed the check: it stays held.
    await gate.hold_at(None if next_gap is None else through + next_gap)
    proc.send(signal.SIGKILL)
    assert await proc.exit_code(10) == -signal.SIGKILL
    await wait_until(partial(_gone, url, holder["pid"]), what="the killed projector's backend to end")
    return committed, batch


async def _events_through(url: str, checkpoint: Checkpoint) -> int:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT count(*) FROM events WHERE (tx_id, position)"
                                 " <= (%s::text::xid8, %s)", (str(checkpoint.tx_id), checkpoint.position))
        return (await cur.fetchone())[0]


async def _is_active(url: str, proc: TalkProcess) -> bool:
    return await active_one(url, [proc]) is proc


async def _gone(url: str, pid: int) -> bool:
    return not await backend_alive(url, pid)
