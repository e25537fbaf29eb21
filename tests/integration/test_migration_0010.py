"""Migration 0010 on a database with history: the read rows that existed before it get their
thread summaries, their ``tm_update`` under the Talk 1.1 rule and their search index, exactly
as a rebuild from the history makes them."""

from __future__ import annotations

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from bench.history import HistoryWriter
from services.migrate import apply_migrations
from tests.conftest import drop_database, new_database
from tests.history import assert_read_tables_match_history, fold_history
from tests.support import wait_until

JSONB = {"medias", "reactions", "mentions"}


async def history_readable(url: str) -> bool:
    """Whether readers of the global order see the whole history (they read below the
    oldest transaction still running anywhere in the cluster)."""
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        cur = await conn.execute("SELECT max(tx_id) < pg_snapshot_xmin(pg_current_snapshot())"
                                 " FROM events")
        return (await cur.fetchone())[0]


async def test_the_existing_rows_are_filled_as_a_rebuild_fills_them(postgres_admin_url):
    name, url = new_database(postgres_admin_url, "talk_m10")
    try:
        await apply_migrations(url, up_to=9)
        await HistoryWriter(url, events=1_500, talks=12, seed=1010).write()
        await wait_until(lambda: history_readable(url), timeout=120,
                         what="every transaction of the history below the read barrier")
        # The read tables as the 0009 projector left them: the history's rows without the
        # columns 0010 adds, and tm_update as it was (unset until a rename, an edit, a delete).
        rows = await fold_history(url)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True,
                                                         row_factory=dict_row) as conn:
            for table, by_id in rows.items():
                cur = await conn.execute(
                    "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass"
                    " AND attnum > 0 AND NOT attisdropped", (f"read_v1.{table}",))
                columns = [r["attname"] for r in await cur.fetchall()]
                for row in by_id.values():
                    values = {c: row[c] for c in columns}
                    if "tm_update" in values:
                        values["tm_update"] = None
                    await conn.execute(
                        f"INSERT INTO read_v1.{table} ({', '.join(columns)})"
                        f" VALUES ({', '.join(['%s'] * len(columns))})",
                        [Jsonb(values[c]) if c in JSONB else values[c] for c in columns])
            await conn.execute(
                "UPDATE projector_checkpoints SET (last_tx, last_pos) = (SELECT tx_id, position"
                " FROM events ORDER BY tx_id DESC, position DESC LIMIT 1) WHERE name = 'read_model'")
            replies = await conn.execute("SELECT count(*) AS n FROM rm_messages"
                                         " WHERE parent_id IS NOT NULL")
            assert (await replies.fetchone())["n"] > 0  # the history has threads

        await apply_migrations(url)

        await assert_read_tables_match_history(url)
        async with await psycopg.AsyncConnection.connect(url, autocommit=True,
                                                         row_factory=dict_row) as conn:
            cur = await conn.execute(
                "SELECT m.customer_id, split_part(m.text, ' ', 1) AS word, count(*) AS n"
                " FROM rm_messages m WHERE m.text <> '' AND m.type = 'normal'"
                " GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 1")
            probe = await cur.fetchone()
            cur = await conn.execute(
                "SELECT count(*) AS n FROM rm_messages m"
                " WHERE talk_search_vector(m.customer_id, m.text)"
                "       @@ talk_search_query(%s, %s) AND m.customer_id = %s",
                (probe["customer_id"], probe["word"], probe["customer_id"]))
            assert (await cur.fetchone())["n"] >= probe["n"]  # the old messages are indexed
    finally:
        drop_database(postgres_admin_url, name)
