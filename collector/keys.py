"""Application state keys of the accept side (aiohttp `AppKey`s), in one place."""

from __future__ import annotations

from aiohttp import web

from chainlens.core.settings import Settings
from collector.ratelimit import RateLimiter
from collector.spool import SpoolWriter
from collector.storeview import StoreView
from collector.visitor import VisitorKeys

SETTINGS = web.AppKey("collector_settings", Settings)
SPOOL = web.AppKey("spool", SpoolWriter)
LIMITER = web.AppKey("limiter", RateLimiter)
DRAINING = web.AppKey("draining", list)
ORIGINS = web.AppKey("origins", frozenset)
VISITORS = web.AppKey("visitors", VisitorKeys)
STORE = web.AppKey("store", StoreView)
