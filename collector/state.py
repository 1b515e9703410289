"""Application state keys of the accept side (aiohttp `AppKey`s), in one place."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from chainlens.core.settings import Settings
from collector.ratelimit import RateLimiter
from collector.spool import SpoolWriter
from collector.storeview import StoreView
from collector.visitor import VisitorKeys


@dataclass
class Config:
    """What the accept side runs with, replaced as a whole by a reload (SIGHUP)."""

    settings: Settings
    origins: frozenset[str]  # every site's origins, for CORS preflights


CONFIG = web.AppKey("config", Config)
SPOOL = web.AppKey("spool", SpoolWriter)
LIMITER = web.AppKey("limiter", RateLimiter)
DRAINING = web.AppKey("draining", list)
VISITORS = web.AppKey("visitors", VisitorKeys)
STORE = web.AppKey("store", StoreView)
HINTS = web.AppKey("hints", dict)  # site → (when fetched, idle thresholds in ms), for the risk script
