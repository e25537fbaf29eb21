"""Typed keys of what the command API keeps on its application."""

from __future__ import annotations

from aiohttp import web

from command_api.stream_cache import CachedEventStore
from command_api.stream_locks import StreamLocks

EVENT_STORE = web.AppKey("event_store", CachedEventStore)
STREAM_LOCKS = web.AppKey("stream_locks", StreamLocks)
