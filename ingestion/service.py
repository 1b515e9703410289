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
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import orjson
import psutil
from aiohttp import web
from clickhouse_connect.driver.client import Client

from chainlens.core import clock, metrics
from chainlens.core.loading import reread
from chainlens.core.logs import setup_logging
from chainlens.core.owner import admin_file, die_with_parent
from chainlens.core.settings import Settings, Site, embedded_path, is_embedded
from chainlens.core.spoolfile import atomic_write
from ingestion import admin, lifecycle, schedule
from ingestion.live import live_state
from ingestion.loader import Loader
from ingestion.report import ReportCache, idle_thresholds
from ingestion.runner import StoreRunner

log = logging.getLogger(__name__)
STORE_NICENESS = 19  # the lowest CPU priority (docs/architecture.md, "The load path")
MEMORY_WORKER = "MemoryWorker"  # ClickHouse's memory-accounting threads, which keep -20


class StoreService:
    """The store side of one process: runner, loader, scheduled rollups, admin routes.

    It also answers the accept side's questions (`status`, `report`: the shape of
    collector/storeview.py) when both run in one process.
    """

    def __init__(self, settings: Settings, runner: StoreRunner, *, token: str = "") -> None:
        self.settings, self.runner, self.token = settings, runner, token
        # Beside the store's thread, so that a rollup or a load holds neither up: the live early
        # warning, and the dashboard's figures, its live panel, the idle thresholds and exports.
        self.warnings = runner.beside("store-live")
        self.reads = runner.beside("store-reads")
        self.loader: Loader | None = None
        self.rollup_lock = asyncio.Lock()
        self.reloads, self.reload_attempts, self.reload_error = 0, 0, ""
        self.reports = ReportCache()

    def attach(self, app: web.Application) -> None:
        app[admin.SERVICE] = self
        app.cleanup_ctx.append(self._lifetime)
        admin.add_routes(app)

    async def _lifetime(self, app: web.Application) -> AsyncIterator[None]:
        await self.runner.start()
        cfg = self.settings.collector
        self.loader = Loader(Path(cfg.spool_dir), self.runner, interval=cfg.flush_interval_s)
        stopping = asyncio.Event()
        tasks = [asyncio.create_task(self.loader.run(stopping), name="loader"),
                 asyncio.create_task(schedule.scheduled(lambda: self.settings, self.runner, self.rollup_lock, stopping,
                                                        after=self.warm), name="rollups"),
                 asyncio.create_task(schedule.live(lambda: self.settings, self.warnings, stopping), name="live")]
        yield
        # Cleanup runs after the accept side has closed its spool: drain it into the store.
        stopping.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for runner in (self.warnings, self.reads, self.runner):
            await runner.close()

    def reload(self) -> None:
        """SIGHUP: read the settings file again (chainlens/core/loading.py, `reload`)."""
        self.settings, _, self.reload_error = reread(self.settings, log)
        self.reload_attempts += 1
        if not self.reload_error:
            self.reloads += 1

    def state(self) -> dict[str, Any]:
        """The loader's and the store's state, for /readyz, /metrics and `/admin/status`."""
        runner, loader = self.runner, self.loader
        oldest = loader.oldest_unloaded_ms if loader else None
        age = None if oldest is None else max(0.0, time.time() - oldest / 1000)
        backlog = loader.backlog_bytes() if loader else 0
        metrics.BACKLOG_BYTES.set(backlog)
        metrics.OLDEST_AGE.set(age or 0.0)
        ok, last_error = runner.ok, runner.last_error
        dsn = self.settings.store.dsn
        if is_embedded(dsn) and not embedded_path(dsn).exists():
            # Deleted under a running service: queries would fail, or answer from an empty store.
            ok, last_error = False, f"the store directory {embedded_path(dsn)} is gone"
        metrics.STORE_UP.set(1 if ok else 0)
        return {
            "store_ok": ok,
            "store_errors": runner.errors + self.warnings.errors + self.reads.errors,
            "last_error": last_error,
            "backlog_bytes": backlog,
            "oldest_unloaded_age_s": age,
            "inserted_rows": loader.inserted_rows if loader else 0,
            "batches": loader.batches if loader else 0,
            "last_batch_rows": loader.last_batch_rows if loader else 0,
            "last_insert_s": loader.last_insert_s if loader else 0.0,
            "skipped_bytes": loader.skipped_bytes if loader else 0,
            "config_reloads": self.reloads,
            "config_reload_attempts": self.reload_attempts,
            "config_error": self.reload_error,  # the last SIGHUP's, when the file did not read
        }

    async def status(self) -> dict[str, Any]:
        return self.state()

    def _site(self, site_id: str) -> Site:
        site = self.settings.site(site_id)
        if site is None:
            raise ValueError(f"unknown site {site_id[:64]!r}")
        return site

    async def live(self, site_id: str) -> dict[str, Any]:
        return await self.reads.call(live_state, self.settings, self._site(site_id))

    async def idle_ms(self, site_id: str) -> dict[str, float]:
        return dict(await self.reads.call(idle_thresholds, self._site(site_id)))

    async def report(self, query: Mapping[str, str]) -> dict[str, Any]:
        site = self.settings.site(query.get("site", "")) or (self.settings.sites[0] if self.settings.sites else None)
        if site is None:
            raise ValueError("no site configured")
        return await self.reads.call(self._report, site, query.get("from"), query.get("to"), query.get("stopped"),
                                     query.get("device"), query.get("segment"))

    def _report(self, client: Client, site: Site, *view: str | None) -> dict[str, Any]:
        """In the reads' thread (the cache's only user): the view's figures, their queries run at
        once on the readers."""
        return self.reports.report(self.reads.readers(), site, *view)

    async def forget(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """An erasure (docs/privacy.md): `site`, `what` (user, visitor or order), `key`, `dry_run`.
        What the spool still holds is loaded first, so nothing of theirs arrives after it."""
        site, what, key = self._site(str(request.get("site", ""))), str(request.get("what", "")), request.get("key")
        if not isinstance(key, str) or not key:
            raise ValueError(f"{what or 'key'}: an id (a string) is required")
        dry_run = request.get("dry_run") is True
        if not dry_run:
            await self._drained()
        return await schedule.exclusively(
            self.settings, self.runner, self.rollup_lock, lifecycle.forget, site, what, key, dry_run=dry_run,
            timeout_s=self.settings.rollup.session_timeout_s, now=clock.now())

    async def export(self, request: Mapping[str, Any]) -> list[dict[str, Any]]:
        site = self._site(str(request.get("site", "")))
        return await self.reads.call(lambda c: list(lifecycle.export(c, site, str(request.get("what", "")),
                                                                     str(request.get("key", "")))))

    async def _drained(self, wait_s: float = 60) -> None:
        deadline = time.monotonic() + wait_s
        while self.loader is not None and self.loader.backlog_bytes() > 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the spool still holds {self.loader.backlog_bytes()} bytes not loaded after "
                                   f"{wait_s:.0f} s (is the store failing? see `chainlens status`); try again")
            await asyncio.sleep(0.2)

    async def warm(self) -> None:
        """After a scheduled pass: each site's default view, so the first look after it is quick."""
        for site in self.settings.sites:
            await self.reads.call(self._report, site, None, None, None, None, None)


def run_store_process(settings: Settings, parent: int) -> None:
    """Entry point of the store process started by `chainlens serve`."""
    # Killed with the supervisor however it dies: what it had not loaded waits in the
    # spool, and loads resume from the committed offsets with the same insert tokens.
    die_with_parent(parent, signal.SIGKILL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the reload handler is in place
    os.setpgrp()  # stopped by the supervisor, after the accept workers
    yield_to_accept()
    setup_logging(role="store")
    asyncio.run(_serve_store(settings))


def yield_to_accept() -> None:
    """Loading yields the CPU and the disk to the accept path: acknowledging beacons is what
    clients wait for, and under saturation the spool absorbs the difference (bounded by its
    cap). Called before the store opens, so the engine's own threads inherit both; threads
    started before (a numeric library's pool at import) are lowered one by one."""
    os.nice(STORE_NICENESS)
    lower_raised_threads()
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or a kernel without I/O classes
        psutil.Process().ionice(psutil.IOPRIO_CLASS_IDLE)


def lower_raised_threads() -> list[str]:
    """Put every thread of this process above the store's niceness back to it, but the
    engine's memory-accounting threads; return the names of those lowered. ClickHouse's
    MemoryWorker raises itself to -20, and a thread started from a raised one inherits its
    priority: a pool thread begun that way would run merges and queries above the accept
    workers (docs/architecture.md, "The load path")."""
    lowered = []
    with contextlib.suppress(OSError):  # not Linux: the process's own niceness is what there is
        for tid in map(int, os.listdir("/proc/self/task")):
            with contextlib.suppress(OSError):  # a thread that ended meanwhile
                if os.getpriority(os.PRIO_PROCESS, tid) >= STORE_NICENESS:
                    continue
                name = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
                if name != MEMORY_WORKER:
                    os.setpriority(os.PRIO_PROCESS, tid, STORE_NICENESS)
                    lowered.append(name)
    return lowered


async def keep_yielding(stopping: asyncio.Event, every_s: float = 2.0) -> None:
    """Until `stopping`, lower every `every_s` the engine's threads begun above the store's
    niceness: in the store process only, whose accept path runs in other processes."""
    while not stopping.is_set():
        if lowered := lower_raised_threads():
            log.info("store threads lowered", extra={"threads": sorted(lowered), "nice": STORE_NICENESS})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), every_s)


async def _serve_store(settings: Settings) -> None:
    app = web.Application(client_max_size=256 << 20)  # `chainlens import` sends 50,000-line chunks
    token = secrets.token_urlsafe(24)
    service = StoreService(settings, StoreRunner(settings.store.dsn), token=token)
    service.attach(app)
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
    loop.add_signal_handler(signal.SIGHUP, service.reload)
    log.info("store process ready", extra={"admin_port": port, "dsn_kind": settings.store.dsn.split(":")[0]})
    await keep_yielding(stop)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    await runner.cleanup()
    log.info("store process stopped")
