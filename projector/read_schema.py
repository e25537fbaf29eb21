"""The read tables' shape, per version: each version of the read model lives in a schema of
its own (``read_v1``, ``read_v2``, ...), and ``rm_chats``, ``rm_participants`` and
``rm_messages`` in the default schema are plain views over the current version's tables
(automatically updatable, so the live projector writes through them and the query API reads
through them). ``read_model_version`` names the current version.

This module is the reference shape of the tables a rebuild creates: keep it equal to what
the migrations create (``0002_read_model.sql``, moved by ``0006_versioned_read_model.sql``);
``tests/integration/rebuild`` compares the two in the catalog.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    jsonb_columns: tuple[str, ...]
    create: str  # with {schema}; the primary key comes with the table
    indexes: tuple[str, ...] = ()  # built after a bulk load
    unique: tuple[tuple[str, str], ...] = ()  # (constraint name, columns), after a bulk load


CHATS = Table(
    "rm_chats",
    ("id", "customer_id", "type", "name", "detail", "member_count", "tm_create", "tm_update",
     "tm_delete", "status", "message_seq", "normal_count", "last_message_id", "tm_last_message"),
    (),
    "CREATE TABLE {schema}.rm_chats ("
    " id uuid PRIMARY KEY, customer_id uuid NOT NULL, type text NOT NULL, name text NOT NULL,"
    " detail text NOT NULL, member_count integer NOT NULL DEFAULT 0,"
    " tm_create timestamptz NOT NULL, tm_update timestamptz, tm_delete timestamptz,"
    " status text NOT NULL DEFAULT 'active', message_seq bigint NOT NULL DEFAULT 0,"
    " normal_count bigint NOT NULL DEFAULT 0, last_message_id uuid,"
    " tm_last_message timestamptz)",
    indexes=("CREATE INDEX IF NOT EXISTS rm_chats_by_create"
             " ON {schema}.rm_chats (tm_create DESC, id DESC)",
             # ?order=activity (0010)
             "CREATE INDEX IF NOT EXISTS rm_chats_by_activity ON {schema}.rm_chats"
             " (customer_id, (coalesce(tm_last_message, tm_create)) DESC, id DESC)"),
)

PARTICIPANTS = Table(
    "rm_participants",
    ("id", "customer_id", "chat_id", "owner_type", "owner_id", "tm_joined", "read_seq",
     "read_n", "last_read_message_id", "tm_read"),
    (),
    "CREATE TABLE {schema}.rm_participants ("
    " id uuid PRIMARY KEY, customer_id uuid NOT NULL, chat_id uuid NOT NULL,"
    " owner_type text NOT NULL, owner_id uuid NOT NULL, tm_joined timestamptz NOT NULL,"
    " read_seq bigint NOT NULL DEFAULT 0, read_n bigint NOT NULL DEFAULT 0,"
    " last_read_message_id uuid, tm_read timestamptz)",
    indexes=("CREATE INDEX IF NOT EXISTS rm_participants_by_owner"
             " ON {schema}.rm_participants (owner_id, customer_id)",),
    unique=(("rm_participants_chat_id_owner_id_key", "chat_id, owner_id"),),
)

MESSAGES = Table(
    "rm_messages",
    ("id", "customer_id", "chat_id", "parent_id", "owner_type", "owner_id", "type", "text",
     "medias", "reactions", "tm_create", "tm_update", "tm_delete", "seq", "n", "mentions",
     "reply_count", "tm_last_reply"),
    ("medias", "reactions", "mentions"),
    "CREATE TABLE {schema}.rm_messages ("
    " id uuid PRIMARY KEY, customer_id uuid NOT NULL, chat_id uuid NOT NULL, parent_id uuid,"
    " owner_type text NOT NULL, owner_id uuid NOT NULL, type text NOT NULL, text text NOT NULL,"
    " medias jsonb NOT NULL DEFAULT '[]', reactions jsonb NOT NULL DEFAULT '[]',"
    " tm_create timestamptz NOT NULL, tm_update timestamptz, tm_delete timestamptz,"
    " seq bigint NOT NULL DEFAULT 0, n bigint NOT NULL DEFAULT 0,"
    " mentions jsonb NOT NULL DEFAULT '[]',"
    " reply_count integer NOT NULL DEFAULT 0, tm_last_reply timestamptz)",
    indexes=("CREATE INDEX IF NOT EXISTS rm_messages_by_chat"
             " ON {schema}.rm_messages (chat_id, tm_create DESC, id DESC)",
             # read state: deleted and mentioning messages after a read marker (0009)
             "CREATE INDEX IF NOT EXISTS rm_messages_deleted_by_n"
             " ON {schema}.rm_messages (chat_id, n)"
             " WHERE tm_delete IS NOT NULL AND type = 'normal'",
             "CREATE INDEX IF NOT EXISTS rm_messages_mentioning_by_n"
             " ON {schema}.rm_messages (chat_id, n)"
             " WHERE mentions <> '[]'::jsonb AND tm_delete IS NULL",
             "CREATE INDEX IF NOT EXISTS rm_messages_by_parent"
             " ON {schema}.rm_messages (parent_id, tm_create DESC, id DESC)"
             " WHERE parent_id IS NOT NULL",
             # search (0010: the functions and why the customer is in the index)
             "CREATE INDEX IF NOT EXISTS rm_messages_search ON {schema}.rm_messages"
             " USING gin (talk_search_vector(customer_id, text))"),
)

TABLES: tuple[Table, ...] = (CHATS, PARTICIPANTS, MESSAGES)

LIVE_CHECKPOINT = "read_model"
"""The live projector's checkpoint (``projector_checkpoints.name``)."""

_VERSION_SCHEMA = re.compile(r"^read_v([0-9]+)$")


def version_schema(version: int) -> str:
    return f"read_v{version}"


def schema_version(schema: str) -> int | None:
    """The version a schema name stands for, or None if it is not a version's schema."""
    m = _VERSION_SCHEMA.match(schema)
    return int(m.group(1)) if m else None


def check_schema_name(schema: str) -> str:
    """Schema names are built here, never taken from input; this keeps them SQL-safe."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
        raise ValueError(f"not a schema name this module makes: {schema!r}")
    return schema


async def create_tables(conn: psycopg.AsyncConnection, schema: str) -> None:
    """The schema and its tables with their primary keys (run inside a transaction)."""
    schema = check_schema_name(schema)
    await conn.execute(f"CREATE SCHEMA {schema}")
    for table in TABLES:
        await conn.execute(table.create.format(schema=schema))


async def create_indexes(conn: psycopg.AsyncConnection, schema: str) -> None:
    """The secondary indexes and unique constraints (built once, after the bulk load)."""
    schema = check_schema_name(schema)
    cur = await conn.execute(
        "SELECT c.conname FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace"
        " WHERE n.nspname = %s", (schema,))
    existing = {row["conname"] for row in await cur.fetchall()}
    for table in TABLES:
        for name, columns in table.unique:
            if name not in existing:  # a resumed rebuild may have built it already
                await conn.execute(f"ALTER TABLE {schema}.{table.name}"
                                   f" ADD CONSTRAINT {name} UNIQUE ({columns})")
        for statement in table.indexes:
            await conn.execute(statement.format(schema=schema))


async def point_views_at(conn: psycopg.AsyncConnection, schema: str) -> None:
    """Make ``rm_*`` read from ``schema``'s tables. In a transaction, this is the switch:
    it holds all three views until commit, so a reader sees the old tables or the new ones,
    never a mix. (A reader holding one view while it waits for another can deadlock with
    it: run it under a ``lock_timeout`` below ``deadlock_timeout``, so the switch is the
    one that gives up, and retry.)"""
    schema = check_schema_name(schema)
    await conn.execute("LOCK TABLE " + ", ".join(t.name for t in TABLES)
                       + " IN ACCESS EXCLUSIVE MODE")
    for table in TABLES:
        await conn.execute(
            f"CREATE OR REPLACE VIEW {table.name} AS SELECT {', '.join(table.columns)}"
            f" FROM {schema}.{table.name}"
        )


async def current_version(conn: psycopg.AsyncConnection) -> int:
    cur = await conn.execute("SELECT version FROM read_model_version")
    row = await cur.fetchone()
    if row is None:
        raise RuntimeError("read_model_version is empty: run `talk migrate`")
    return row["version"]


async def set_current_version(conn: psycopg.AsyncConnection, version: int) -> None:
    await conn.execute("UPDATE read_model_version SET version = %s, switched_at = now()", (version,))
