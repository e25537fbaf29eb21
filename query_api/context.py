"""Typed keys of what the query API keeps on its application."""

from __future__ import annotations

from aiohttp import web

from query_api.read_store import ReadStore

READ_STORE = web.AppKey("read_store", ReadStore)
