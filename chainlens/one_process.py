"""Both sides in one process: the accept side with the store service attached.

Used by tests and tools that want one process; `chainlens serve` runs the two
sides in separate processes instead (chainlens/serve.py).
"""

from __future__ import annotations

from aiohttp import web

from chainlens.core.settings import Settings
from collector.app import create_app
from ingestion.runner import StoreRunner
from ingestion.service import StoreService


def single_process_app(settings: Settings, *, runner: StoreRunner | None = None) -> web.Application:
    service = StoreService(settings, runner or StoreRunner(settings.store.dsn))
    return create_app(settings, writer="w0", store=service, setup=service.attach)
