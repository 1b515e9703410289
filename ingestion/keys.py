"""Application state keys of the store side (aiohttp `AppKey`s), in one place."""

from __future__ import annotations

import asyncio

from aiohttp import web

from chainlens.settings import Settings
from ingestion.loader import Loader
from ingestion.runner import StoreRunner

RUNNER = web.AppKey("runner", StoreRunner)
LOADER = web.AppKey("loader", Loader)
SETTINGS = web.AppKey("settings", Settings)
TOKEN = web.AppKey("admin_token", str)
ROLLUP_LOCK = web.AppKey("rollup_lock", asyncio.Lock)
