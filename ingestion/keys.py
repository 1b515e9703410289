"""Application state keys of the store side (aiohttp `AppKey`s)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:  # the service module registers this key; naming its type here only for readers and mypy
    from ingestion.service import StoreService

SERVICE: web.AppKey[StoreService] = web.AppKey("store_service")
