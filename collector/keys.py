"""Application state keys of the accept side (aiohttp `AppKey`s), in one place."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from chainlens.settings import Settings
from collector.ratelimit import RateLimiter
from collector.spool import SpoolWriter
from collector.visitor import VisitorKeys


@dataclass(frozen=True)
class StoreLink:
    """Where an accept worker finds the store process's admin API."""

    url: str
    token: str


SETTINGS = web.AppKey("collector_settings", Settings)
SPOOL = web.AppKey("spool", SpoolWriter)
LIMITER = web.AppKey("limiter", RateLimiter)
DRAINING = web.AppKey("draining", list)
ORIGINS = web.AppKey("origins", frozenset)
VISITORS = web.AppKey("visitors", VisitorKeys)
STATUS_CACHE = web.AppKey("status_cache", list)  # [monotonic time, the store's last status]
LINK = web.AppKey("store_link", StoreLink)
