"""Talk 1.1 reads at scale (issue 10): search on 1,000,000 messages vs 10,000, and the list of
talks by activity for an agent in 1,000 talks.

    python -m bench.search [--small 10000] [--large 1000000] [--talks 1000] [--requests 300]
                           [--admin-url postgresql://postgres@127.0.0.1:5432/postgres] [--keep]

Two databases of its own (``talk_bench_search_<pid>_small`` and ``_large``, migrated,
dropped at the end unless ``--keep``), their read tables seeded directly with ``COPY`` (a
read-side benchmark: these rows have no events). Both hold the same agent of one customer in
``--talks`` talks with ``--small`` messages in all (the same rows: the same seed), texts of
6 to 14 words drawn from a 5,000-word vocabulary with a Zipf law, one word in 20 capitalised
or accented. The large one also holds ``--large`` minus ``--small`` messages of 99 other
customers (100 talks each) with the same vocabulary, so the query's words are everywhere
(its search index is built after that load, as a bulk load should); ``ANALYZE`` on both.

The query API (``talk up``'s app, in this process) serves each database; every request goes
to both, one at a time, in alternating order, so both see the same load on the machine
(p50/p99 over ``--requests`` requests a case and side, after 20 of warm-up; a search must
answer the same on both):

- ``GET talk_messages?q=<a common word in capitals, the start of a rarer one>&page_size=50``
  across the agent's talks, and with ``chat_id`` (one talk): target p99 ratio <= 2;
- ``GET talk_messages`` without ``chat_id`` (every talk of the agent), page of 50;
- ``GET talk_chats?order=activity&page_size=100``, the first page and page 9 of 10 (via the
  tokens), and ``order=created`` beside it.

The index build of the large database is one long transaction: while it runs, every reader
of the global order in the same cluster waits (the xmin barrier). Point ``--admin-url`` at a
private cluster when others share the server. Nothing is asserted; the figures go to
bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import psycopg
from aiohttp.test_utils import TestClient, TestServer
from psycopg import sql

from services.auth import mint_token
from services.logging import configure_logging
from services.migrate import apply_migrations
from services.settings import Settings
from services.up import build_up_app

V = "/v1.0/service_agents"
SECRET = "bench-search-" + "k" * 40
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
ACCENTED = {"e": "é", "a": "à", "o": "ö", "u": "ü", "c": "ç", "i": "ï", "n": "ñ"}


def vocabulary(rng: random.Random, size: int = 5000) -> list[str]:
    letters = "abcdefghijklmnoprstuvwyz"
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 9))))
    return sorted(words, key=lambda w: (len(w), w))


class Texts:
    """Message texts with a Zipf law over the vocabulary; one word in 20 capitalised or
    accented, as people write."""

    def __init__(self, words: list[str], rng: random.Random) -> None:
        self.words = words
        self.rng = rng
        self.cum_weights = list(itertools.accumulate(1 / (rank + 1)
                                                     for rank in range(len(words))))

    def __call__(self) -> str:
        picked = self.rng.choices(self.words, cum_weights=self.cum_weights,
                                  k=self.rng.randint(6, 14))
        out = []
        for word in picked:
            roll = self.rng.random()
            if roll < 0.03:
                word = word.capitalize()
            elif roll < 0.05:
                word = "".join(ACCENTED.get(ch, ch) for ch in word)
            out.append(word)
        return " ".join(out)


async def current_schema(conn: psycopg.AsyncConnection) -> str:
    cur = await conn.execute("SELECT version FROM read_model_version")
    return f"read_v{(await cur.fetchone())[0]}"


async def copy_rows(conn: psycopg.AsyncConnection, schema: str, table: str,
                    columns: tuple[str, ...], rows) -> None:
    statement = sql.SQL("COPY {}.{} ({}) FROM STDIN").format(
        sql.Identifier(schema), sql.Identifier(table),
        sql.SQL(", ").join(sql.Identifier(c) for c in columns))
    async with conn.cursor().copy(statement) as copy:
        for row in rows:
            await copy.write_row(row)


MESSAGE_COLUMNS = ("id", "customer_id", "chat_id", "owner_type", "owner_id", "type", "text",
                   "tm_create", "tm_update")


def rid(rng: random.Random) -> UUID:
    """An id drawn from ``rng``: the same seed gives the same rows in both databases."""
    return UUID(int=rng.getrandbits(128), version=4)


async def seed_customer(conn, schema: str, customer: UUID, agent: UUID, talks: int,
                        messages: int, texts: Texts, rng: random.Random) -> list[UUID]:
    """``talks`` talks of ``agent`` (and one colleague each) holding ``messages`` messages."""
    chat_ids = [rid(rng) for _ in range(talks)]
    created = {c: EPOCH + timedelta(seconds=rng.uniform(0, 86_400)) for c in chat_ids}
    posted = []
    last: dict[UUID, datetime] = {}
    for _ in range(messages):
        chat = rng.choice(chat_ids)
        at = created[chat] + timedelta(seconds=rng.uniform(1, 30 * 86_400))
        last[chat] = max(last.get(chat, at), at)
        posted.append((rid(rng), customer, chat, "agent", agent, "normal", texts(), at, at))
    await copy_rows(conn, schema, "rm_chats",
                    ("id", "customer_id", "type", "name", "detail", "member_count", "tm_create",
                     "tm_update", "tm_last_message"),
                    [(c, customer, "group", f"talk {i}", "", 2, created[c], created[c],
                      last.get(c)) for i, c in enumerate(chat_ids)])
    colleague = rid(rng)
    await copy_rows(conn, schema, "rm_participants",
                    ("id", "customer_id", "chat_id", "owner_type", "owner_id", "tm_joined"),
                    [row for c in chat_ids for row in (
                        (rid(rng), customer, c, "agent", agent, created[c]),
                        (rid(rng), customer, c, "agent", colleague, created[c]))])
    await copy_rows(conn, schema, "rm_messages", MESSAGE_COLUMNS, posted)
    return chat_ids


async def seed_others(conn, schema: str, messages: int, customers: int, texts: Texts,
                      rng: random.Random, progress: Callable[[str], None]) -> None:
    """``messages`` more messages, of ``customers`` other customers (100 talks each). The
    search index is dropped for the load and built again after it (as a bulk load should)."""
    await conn.execute(f"DROP INDEX {schema}.rm_messages_search")
    per = messages // customers
    for n in range(customers):
        customer, agent = rid(rng), rid(rng)
        await seed_customer(conn, schema, customer, agent, 100, per, texts, rng)
        if n % 10 == 9:
            progress(f"  {(n + 1) * per:,} more messages copied")
    started = time.monotonic()
    await conn.execute(f"CREATE INDEX rm_messages_search ON {schema}.rm_messages"
                       " USING gin (talk_search_vector(customer_id, text))")
    progress(f"  search index built in {time.monotonic() - started:.0f}s")


class Reader:
    def __init__(self, client: TestClient, customer: UUID, agent: UUID) -> None:
        self.client = client
        self.headers = {"Authorization": "Bearer " + mint_token(SECRET, customer, agent,
                                                                ttl=24 * 3600)}

    async def get(self, path: str, **params) -> dict:
        async with self.client.get(path, params=params, headers=self.headers) as resp:
            body = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"GET {path} {params}: {resp.status} {body}")
            return body


CASES: tuple[tuple[str, str], ...] = (
    ("search", "search q (every talk of the agent)"),
    ("search_talk", "search q, chat_id=<one talk>"),
    ("feed", "talk_messages without chat_id, page of 50"),
    ("activity", "talk_chats?order=activity, first page of 100"),
    ("activity_deep", "talk_chats?order=activity, page 9 of 10"),
    ("created", "talk_chats?order=created, first page of 100"),
)


class Side:
    """One database and the query API over it, with the requests of each case."""

    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.client: TestClient | None = None
        self.calls: dict[str, Callable[[], Awaitable[dict]]] = {}
        self.samples: dict[str, list[float]] = {key: [] for key, _ in CASES}

    async def start(self, customer: UUID, agent: UUID, query: str) -> None:
        settings = Settings(database_url=self.url, jwt_secret=SECRET, amqp_url=None,
                            log_level="WARNING")
        self.client = TestClient(TestServer(build_up_app(settings)))
        await self.client.start_server()
        reader = Reader(self.client, customer, agent)
        token = ""
        for _ in range(8):  # the token of page 9 of the activity order
            token = (await reader.get(f"{V}/talk_chats", order="activity", page_size=100,
                                      page_token=token))["next_page_token"]
        found = (await reader.get(f"{V}/talk_messages", q=query, page_size=1))["result"]
        busiest = found[0]["chat_id"] if found else (await reader.get(
            f"{V}/talk_chats", page_size=1))["result"][0]["id"]
        self.calls = {
            "search": lambda: reader.get(f"{V}/talk_messages", q=query, page_size=50),
            "search_talk": lambda: reader.get(f"{V}/talk_messages", q=query, chat_id=busiest,
                                              page_size=50),
            "feed": lambda: reader.get(f"{V}/talk_messages", page_size=50),
            "activity": lambda: reader.get(f"{V}/talk_chats", order="activity", page_size=100),
            "activity_deep": lambda: reader.get(f"{V}/talk_chats", order="activity",
                                                page_size=100, page_token=token),
            "created": lambda: reader.get(f"{V}/talk_chats", order="created", page_size=100),
        }

    async def once(self, key: str, record: bool) -> dict:
        started = time.perf_counter()
        answer = await self.calls[key]()
        if record:
            self.samples[key].append((time.perf_counter() - started) * 1000)
        return answer

    async def stop(self) -> None:
        if self.client is not None:
            await self.client.close()


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def measure(small: Side, large: Side, requests: int) -> None:
    """Each case, the two sides alternately (the order swapped every round), so both see the
    same load on the machine; the same answers are checked on both."""
    for key, label in CASES:
        for i in range(20 + requests):
            pair = (small, large) if i % 2 else (large, small)
            answers = [await side.once(key, record=i >= 20) for side in pair]
            if key.startswith("search") and answers[0] != answers[1]:
                raise RuntimeError(f"{label}: the two databases answer differently")
        print(f"  {label:<46}" + "".join(
            f"  {side.name} p50 {statistics.median(side.samples[key]):6.2f}"
            f" p99 {pct(side.samples[key], 0.99):6.2f} ms" for side in (small, large))
            + f"   p99 ratio {pct(large.samples[key], 0.99) / pct(small.samples[key], 0.99):.2f}",
            flush=True)


async def create_database(admin_url: str, name: str) -> str:
    async with await psycopg.AsyncConnection.connect(admin_url, autocommit=True) as admin:
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    await apply_migrations(url)
    return url


async def run(args: argparse.Namespace) -> None:
    configure_logging(Settings(log_level="WARNING"))
    names = [f"talk_bench_search_{os.getpid()}_small", f"talk_bench_search_{os.getpid()}_large"]
    sides: list[Side] = []
    try:
        words = vocabulary(random.Random(10))
        customer, agent = uuid4(), uuid4()
        # Two words: a common one in capitals (folded away), and the start of a rarer one.
        query = args.query or f"{words[20].upper()} {words[120][:3]}"
        for name, extra in zip(names, (0, args.large - args.small), strict=True):
            url = await create_database(args.admin_url, name)
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
                schema = await current_schema(conn)
                started = time.monotonic()
                rng = random.Random(11)  # the agent's talks: the same on both sides
                await seed_customer(conn, schema, customer, agent, args.talks, args.small,
                                    Texts(words, rng), rng)
                if extra:
                    rng = random.Random(12)
                    await seed_others(conn, schema, extra, 99, Texts(words, rng), rng,
                                      lambda m: print(m, flush=True))
                await conn.execute("ANALYZE")
                cur = await conn.execute("SELECT count(*) FROM rm_messages")
                total = (await cur.fetchone())[0]
            side = Side(f"{total:,}", url)
            sides.append(side)
            print(f"{name}: {total:,} messages ({time.monotonic() - started:.0f}s)", flush=True)
        for side in sides:
            await side.start(customer, agent, query)
        small, large = sides
        found = len((await small.once("search", record=False))["result"])
        print(f"\nthe agent: {args.talks:,} talks, {args.small:,} messages; q={query!r} finds"
              f" {found} of them; {args.requests} requests a case and side\n", flush=True)
        await measure(small, large, args.requests)
    finally:
        for side in sides:
            await side.stop()
        if not args.keep:
            async with await psycopg.AsyncConnection.connect(args.admin_url,
                                                             autocommit=True) as admin:
                for name in names:
                    await admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                                        .format(sql.Identifier(name)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--talks", type=int, default=1_000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--query", default="", help="q (default: a common word in capitals "
                                                     "and the start of a rarer one)")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
