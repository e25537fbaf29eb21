"""``events.copy_out``: a ``COPY ... TO STDOUT`` read in batches: every row once, whole and in
order, whatever the batch sizes; an error the server raises midway reaches the caller; and a
reader that stops early leaves the connection usable (the COPY cancelled and drained)."""

from __future__ import annotations

from contextlib import aclosing

import psycopg
import pytest

from events.copy_out import MAX_BATCH, copy_out

ROWS = 20_000  # ~2 MB: more than libpq and the socket hold at once


async def connect(url: str) -> psycopg.AsyncConnection:
    return await psycopg.AsyncConnection.connect(url, autocommit=True)


async def read_all(conn: psycopg.AsyncConnection, statement: str) -> list[list[bytes]]:
    async with aclosing(copy_out(conn, statement)) as batches:
        return [[bytes(row) for row in batch] async for batch in batches]


async def test_every_row_once_whole_and_in_order(database_url):
    statement = (f"COPY (SELECT g, repeat('x', 90) || g FROM generate_series(1, {ROWS}) g)"
                 " TO STDOUT")
    async with await connect(database_url) as conn:
        batches = await read_all(conn, statement)
        assert all(0 < len(batch) <= MAX_BATCH for batch in batches)
        rows = [row for batch in batches for row in batch]
        assert rows == [b"%d\t%s%d\n" % (g, b"x" * 90, g) for g in range(1, ROWS + 1)]
        assert len(batches) > 1
        # the connection is free for the next statement
        assert (await (await conn.execute("SELECT 1")).fetchone()) == (1,)


async def test_an_empty_copy_and_a_binary_one(database_url):
    async with await connect(database_url) as conn:
        assert await read_all(conn, "COPY (SELECT 1 WHERE false) TO STDOUT") == []
        [[first, trailer]] = await read_all(
            conn, "COPY (SELECT 7::int4) TO STDOUT WITH (FORMAT binary)")
        assert first.startswith(b"PGCOPY\n\xff\r\n\x00")
        assert first.endswith(b"\x00\x01\x00\x00\x00\x04\x00\x00\x00\x07")
        assert trailer == b"\xff\xff"


async def test_an_error_midway_reaches_the_reader(database_url):
    statement = f"COPY (SELECT 1 / ({ROWS} - g) FROM generate_series(1, {ROWS}) g) TO STDOUT"
    async with await connect(database_url) as conn:
        seen = 0
        with pytest.raises(psycopg.errors.DivisionByZero):
            async with aclosing(copy_out(conn, statement)) as batches:
                async for batch in batches:
                    seen += len(batch)
        assert seen < ROWS
        assert (await (await conn.execute("SELECT 2")).fetchone()) == (2,)


async def test_a_reader_that_stops_early_leaves_the_connection_usable(database_url):
    statement = f"COPY (SELECT g FROM generate_series(1, {ROWS * 50}) g) TO STDOUT"
    async with await connect(database_url) as conn:
        with pytest.raises(BrokenPipeError):
            async with aclosing(copy_out(conn, statement)) as batches:
                async for _ in batches:
                    raise BrokenPipeError  # as a write to a closed stdout does
        assert (await (await conn.execute("SELECT 3")).fetchone()) == (3,)
        with pytest.raises(BrokenPipeError):  # and inside a transaction, as the export reads
            async with conn.transaction():
                async with aclosing(copy_out(conn, statement)) as batches:
                    async for _ in batches:
                        raise BrokenPipeError
        assert (await (await conn.execute("SELECT 4")).fetchone()) == (4,)
