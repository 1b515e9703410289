"""The store side of `chainlens serve`: the one process that owns the store.

It runs the loader (spool → ClickHouse), the scheduled rollups, and a
loopback-only, token-protected admin API through which `chainlens sql`,
`import` and `rollup` reach an embedded store that this process holds open
(an embedded directory has a single owner). Its address and token are written
to `admin.json` in the spool directory, readable by the owner only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
from aiohttp import web

from chainlens.settings import Settings
from ingestion import admin, schedule
from ingestion.keys import LOADER, ROLLUP_LOCK, RUNNER, SETTINGS, TOKEN
from ingestion.loader import Loader
from ingestion.runner import StoreRunner
from ingestion.spoolfile import atomic_write

log = logging.getLogger(__name__)
ADMIN_FILE = "admin.json"
STORE_NICENESS = 10


def attach_store(app: web.Application, settings: Settings, runner: StoreRunner) -> None:
    """Give `app` the store: loader, scheduled rollups and the admin routes."""
    app[RUNNER] = runner
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_store_ctx)
    admin.add_routes(app)


async def _store_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, runner = app[SETTINGS], app[RUNNER]
    await runner.start()
    cfg = settings.collector
    loader = Loader(Path(cfg.spool_dir), runner, interval=cfg.flush_interval_s)
    app[LOADER] = loader
    stopping = asyncio.Event()
    lock = app[ROLLUP_LOCK] = asyncio.Lock()
    tasks = [asyncio.create_task(loader.run(stopping), name="loader"),
             asyncio.create_task(schedule.scheduled(settings, runner, lock, stopping), name="rollups")]
    yield
    # Cleanup runs after the accept side has closed its spool: drain it into the store.
    stopping.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    await runner.close()


def admin_file(settings: Settings) -> Path:
    return Path(settings.collector.spool_dir) / ADMIN_FILE


def run_store_process(settings: Settings) -> None:
    """Entry point of the store process started by `chainlens serve`."""
    from chainlens.logs import setup_logging
    os.setpgrp()  # stopped by the supervisor, after the accept workers
    # Loading yields the CPU to the accept path: acknowledging beacons is what clients
    # wait for; under saturation the spool absorbs the difference (bounded by its cap).
    # Set before the store opens, so the engine's own threads inherit it.
    os.nice(STORE_NICENESS)
    setup_logging(role="store")
    asyncio.run(_serve_store(settings))


async def _serve_store(settings: Settings) -> None:
    app = web.Application(client_max_size=256 << 20)  # `chainlens import` sends 50,000-line chunks
    token = secrets.token_urlsafe(24)
    app[TOKEN] = token
    attach_store(app, settings, StoreRunner(settings.store.dsn))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    path = admin_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    old_umask = os.umask(0o077)
    try:
        atomic_write(path, orjson.dumps({"url": f"http://127.0.0.1:{port}", "token": token, "pid": os.getpid()}))
    finally:
        os.umask(old_umask)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("store process ready", extra={"admin_port": port, "dsn_kind": settings.store.dsn.split(":")[0]})
    await stop.wait()
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    await runner.cleanup()
    log.info("store process stopped")
