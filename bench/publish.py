"""Publishing throughput (issue 4, the projector side): what the outbox costs the projector,
and how fast the publisher drains the outbox next to bare RabbitMQ publishing.

    python -m bench.publish [--talks 50] [--messages 5000] [--rounds 3]
                            [--admin-url URL] [--amqp-url URL]

History: a template database (``talk_bench_pub_<pid>_tpl``, migrated) holding ``--talks``
talks (each created with three participants, one transaction) and ``--messages`` messages
posted round-robin over them, one transaction each, appended through
``PostgresEventStore``. Every measured run gets a fresh copy (``CREATE DATABASE … TEMPLATE``).

1. Projector catch-up, events/s, from an empty read model to the head:
   ``projector``  ``Projector(settings)`` as ``talk projector`` runs without ``TALK_AMQP_URL``;
   ``+ outbox``   ``build_projector`` with ``TALK_AMQP_URL`` set: the same plus the outbox
                  (rows loaded before each batch, ``data``/``audience`` folded, rows inserted).
2. Outbox drain to RabbitMQ, events/s, from the outbox ``+ outbox`` left to an empty one:
   ``publisher``       ``Publisher`` (reads 500 rows, publishes them pipelined with confirms,
                       deletes the confirmed prefix), to this run's own exchange and stream
                       queue (deleted at the end);
   ``bare pipelined``  the ceiling: the same bodies and properties published with aio-pika
                       on one confirming channel, 500 in flight, nothing read or deleted;
   ``bare one by one`` each publish awaits its confirm before the next.

Rounds alternate the order of the systems; figures are medians over the rounds with
min-max. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from uuid import uuid4

import aio_pika
import psycopg
import structlog
from psycopg.rows import dict_row

from events.catalogue import (
    ChatCreated,
    MessagePosted,
    ParticipantJoined,
    chat_stream,
    message_stream,
)
from events.envelope import Checkpoint, Metadata, NewEvent
from events.postgres_store import PostgresEventStore
from events.store import StreamAppend
from projector.publisher import Publisher
from projector.runner import Projector
from projector.service import build_projector
from services.amqp import declare_topology
from services.db import Database, make_pool
from services.migrate import apply_migrations
from services.settings import Settings
from services.timefmt import utcnow

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def db_url(admin_url: str, dbname: str) -> str:
    return psycopg.conninfo.make_conninfo(admin_url, dbname=dbname)


def admin(admin_url: str, sql: str) -> None:
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql)


async def make_history(url: str, talks: int, messages: int) -> int:
    """Append the history; returns how many events it holds."""
    settings = Settings(database_url=url, db_pool_max_size=16)
    pool = make_pool(settings, min_size=4, max_size=16, name="bench-history")
    await pool.open()
    store = PostgresEventStore(Database(pool))
    customer = uuid4()
    chats: list[tuple] = []
    try:
        for _ in range(talks):
            chat_id, agents = uuid4(), [uuid4() for _ in range(3)]
            events = [ChatCreated(chat_id=chat_id, customer_id=customer, type="group",
                                  name="bench", detail="", tm_create=utcnow())]
            events += [ParticipantJoined(chat_id=chat_id, participant_id=uuid4(),
                                         owner_type="agent", owner_id=a, tm_joined=utcnow())
                       for a in agents]
            stream = chat_stream(chat_id)
            await store.append([StreamAppend(stream, 0, tuple(NewEvent(stream, e) for e in events))],
                               Metadata(customer, "agent", agents[0]))
            chats.append((chat_id, agents))
        queue = list(range(messages))

        async def writer() -> None:
            while queue:
                i = queue.pop()
                chat_id, agents = chats[i % talks]
                posted = MessagePosted(message_id=uuid4(), chat_id=chat_id, owner_type="agent",
                                       owner_id=agents[i % 3], type="normal",
                                       text=f"message {i} " + "x" * 60, tm_create=utcnow())
                stream = message_stream(posted.message_id)
                await store.append([StreamAppend(stream, 0, (NewEvent(stream, posted),))],
                                   Metadata(customer, "agent", posted.owner_id))

        await asyncio.gather(*(writer() for _ in range(16)))
    finally:
        await pool.close()
    return talks * 4 + messages


async def head(url: str) -> Checkpoint:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute("SELECT tx_id::text::bigint, position FROM events"
                                 " ORDER BY tx_id DESC, position DESC LIMIT 1")
        tx_id, position = await cur.fetchone()
        return Checkpoint(tx_id, position)


async def catch_up(projector: Projector, last: Checkpoint) -> float:
    """Seconds from start until the projector has applied everything up to ``last``."""
    stop = asyncio.Event()
    start = time.perf_counter()
    task = asyncio.create_task(projector.run(stop))
    try:
        while projector.checkpoint < last:
            await projector.applied.wait()
        return time.perf_counter() - start
    finally:
        stop.set()
        await task


async def drain(publisher: Publisher, total: int) -> float:
    stop = asyncio.Event()
    start = time.perf_counter()
    task = asyncio.create_task(publisher.run(stop))
    try:
        while publisher.published < total:
            await asyncio.sleep(0.005)
            if task.done():
                task.result()
        return time.perf_counter() - start
    finally:
        stop.set()
        await task


async def outbox_rows(url: str) -> list[dict]:
    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
        cur = await conn.execute(
            "SELECT message_id, routing_key, body::text AS body FROM outbox ORDER BY seq")
        return await cur.fetchall()


async def bare_publish(amqp_url: str, exchange_name: str, rows: list[dict], window: int) -> float:
    """Seconds to publish ``rows`` with confirms, ``window`` in flight at a time."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange(exchange_name)
        messages = [(aio_pika.Message(r["body"].encode(), message_id=str(r["message_id"]),
                                      content_type="application/json",
                                      delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                     r["routing_key"]) for r in rows]
        start = time.perf_counter()
        for i in range(0, len(messages), window):
            await asyncio.gather(*(exchange.publish(m, key, mandatory=False)
                                   for m, key in messages[i:i + window]))
        return time.perf_counter() - start


def summary(rates: list[float]) -> str:
    return f"{statistics.median(rates):8.0f} ({min(rates):.0f}-{max(rates):.0f})"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--talks", type=int, default=50)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--admin-url", default=os.environ.get("TALK_TEST_DATABASE_URL", ADMIN_URL))
    parser.add_argument("--amqp-url", default=os.environ.get("TALK_TEST_AMQP_URL", AMQP_URL))
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    prefix = f"talk_bench_pub_{os.getpid()}"
    template = f"{prefix}_tpl"
    suffix = f"{os.getpid()}.{uuid4().hex[:6]}"
    exchange, stream = f"talk.bench.{suffix}", f"talk.bench.{suffix}.stream"
    admin(args.admin_url, f'CREATE DATABASE "{template}"')
    copies: list[str] = []
    try:
        await apply_migrations(db_url(args.admin_url, template))
        total = await make_history(db_url(args.admin_url, template), args.talks, args.messages)
        print(f"history: {args.talks} talks, {args.messages} messages = {total} events")

        def fresh(name: str) -> Settings:
            dbname = f"{prefix}_{name}"
            copies.append(dbname)
            admin(args.admin_url, f'CREATE DATABASE "{dbname}" TEMPLATE "{template}"')
            return Settings(database_url=db_url(args.admin_url, dbname), amqp_url=args.amqp_url,
                            exchange=exchange, stream_queue=stream, log_level="WARNING")

        last = await head(db_url(args.admin_url, template))
        connection = await aio_pika.connect(args.amqp_url)
        async with connection:
            await declare_topology(await connection.channel(), fresh("declare"))
        rates: dict[str, list[float]] = {k: [] for k in (
            "projector", "+ outbox", "publisher", "bare pipelined", "bare one by one")}
        for round_ in range(args.rounds):
            outboxed, plain = fresh(f"outbox_{round_}"), fresh(f"plain_{round_}")
            cells: list[tuple[str, Callable[[], Awaitable[float]]]] = [
                ("projector", lambda s=plain: catch_up(Projector(s), last)),
                ("+ outbox", lambda s=outboxed: catch_up(build_projector(s), last)),
            ]
            if round_ % 2:
                cells.reverse()
            for key, cell in cells:
                rates[key].append(total / await cell())
            rows = await outbox_rows(outboxed.database_url)
            one_by_one = rows[:1000]
            cells = [
                ("publisher", lambda s=outboxed, r=rows: drain(Publisher(s), len(r))),
                ("bare pipelined", lambda r=rows: bare_publish(args.amqp_url, exchange, r, 500)),
                ("bare one by one",
                 lambda r=one_by_one: bare_publish(args.amqp_url, exchange, r, 1)),
            ]
            if round_ % 2:
                cells.reverse()
            for key, cell in cells:
                n = len(one_by_one) if key == "bare one by one" else len(rows)
                rates[key].append(n / await cell())

        print(f"\nevents/s, median (min-max) over {args.rounds} rounds, load average "
              f"{os.getloadavg()[0]:.1f}")
        print("\n1. projector catch-up")
        for key in ("projector", "+ outbox"):
            ratio = statistics.median(rates[key]) / statistics.median(rates["projector"])
            print(f"  {key:16} {summary(rates[key])}   {ratio:.2f}x")
        print("\n2. outbox drain to RabbitMQ")
        for key in ("publisher", "bare pipelined", "bare one by one"):
            ratio = statistics.median(rates[key]) / statistics.median(rates["bare pipelined"])
            print(f"  {key:16} {summary(rates[key])}   {ratio:.2f}x")
    finally:
        for dbname in [*copies, template]:
            admin(args.admin_url, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        connection = await aio_pika.connect(args.amqp_url)
        async with connection:
            channel = await connection.channel()
            await channel.queue_delete(stream)
            await channel.exchange_delete(exchange)


if __name__ == "__main__":
    asyncio.run(main())
