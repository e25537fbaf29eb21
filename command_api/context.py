"""Typed keys of what the command API keeps on its application."""

from __future__ import annotations

from aiohttp import web

from events.postgres_store import PostgresEventStore

EVENT_STORE = web.AppKey("event_store", PostgresEventStore)
