"""Reading a ``COPY ... TO STDOUT`` in batches of rows, for the audit commands' long reads.

psycopg's ``AsyncCopy.read()`` hands over one row per call, and each call costs a few
microseconds of Python (a generator, a wait, a coroutine): as much as everything else an
export does per event. :func:`copy_out` takes every row libpq already holds with the
non-blocking ``PGconn.get_copy_data`` and yields them as one list; only when libpq holds
none does it wait, through ``AsyncCopy.read()``. The server sends exactly one ``CopyData``
message per row (the protocol says so: "always one per row"), so each item of a batch is
one whole row in the COPY's format (a line with its ``\\n`` in text and CSV, a tuple in
binary, whose first message also carries the 19-byte file header and whose last one, two
bytes, is the trailer).

Use it under ``contextlib.aclosing``: a consumer that stops early (an exception, a reader
gone away) then closes the generator at once, and psycopg cancels the COPY and drains the
connection before the transaction around it ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from psycopg import pq

Row = memoryview
MAX_BATCH = 1000  # rows; a batch is what has arrived, so a fast server could make it any size


async def copy_out(conn: psycopg.AsyncConnection, statement: str,
                   params: dict[str, Any] | None = None) -> AsyncIterator[list[Row]]:
    """The rows of ``statement`` (a ``COPY ... TO STDOUT``), in batches of what has arrived."""
    async with conn.cursor().copy(statement, params) as copy:
        pgconn = conn.pgconn
        get = pgconn.get_copy_data
        batch: list[Row] = []
        while True:
            nbytes = 1
            while len(batch) < MAX_BATCH:
                nbytes, data = get(1)  # 1: never blocks; 0 means no whole row is buffered
                if nbytes == 0:
                    # libpq reads the socket 16 kB at a time, and only when asked: ask once
                    # more (without waiting) before paying for a round of the event loop.
                    pgconn.consume_input()
                    nbytes, data = get(1)
                    if nbytes == 0:
                        break
                if nbytes < 0:
                    break
                batch.append(data)
            if batch:
                yield batch
                batch = []
            if nbytes < 0:  # the end (or an error) read here: psycopg did not see it
                await _finish(conn)
                return
            if nbytes == 0:
                row = await copy.read()  # waits for a row; b"" once psycopg ended the COPY
                if not row:
                    return
                batch.append(row)


async def _finish(conn: psycopg.AsyncConnection) -> None:
    """Collect the COPY's closing result (its command tag, or the error that ended it), as
    ``AsyncCopy.read()`` does when it reads the end itself."""
    pgconn = conn.pgconn
    error = None
    while True:
        while pgconn.is_busy():
            await _readable(pgconn.socket)
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            break
        if result.status != pq.ExecStatus.COMMAND_OK and error is None:
            error = psycopg.errors.error_from_result(result, encoding=conn.info.encoding)
    if error is not None:
        raise error


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(fd)
