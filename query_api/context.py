"""Typed keys of what the query API keeps on its application."""

from __future__ import annotations

from aiohttp import web

from query_api.read_store import ReadStore

READ_STORE = web.AppKey("read_store", ReadStore)
# The same queries on the primary: the event store's head, which a standby may not have yet.
PRIMARY_STORE = web.AppKey("primary_store", ReadStore)
