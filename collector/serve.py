"""`chainlens serve`: a supervisor, one store process and N accept workers.

The accept workers share the port (SO_REUSEPORT) and write to their own spool
directories; the store process is the single owner of the store (an embedded
directory allows no other) and loads the spool. SIGTERM or SIGINT stops the
workers first (they finish in-flight requests and fsync), then the store
process (it drains the spool into the store), then exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import time
from multiprocessing.process import BaseProcess
from pathlib import Path

import orjson

from chainlens import metrics
from chainlens.logs import setup_logging
from chainlens.settings import Settings
from ingestion.service import admin_file, run_store_process

log = logging.getLogger(__name__)
STOP_WORKERS_S = 15
STOP_STORE_S = 120
QUICK_EXIT_S = 5


def run_worker(settings: Settings, index: int, link_url: str, link_token: str) -> None:
    from aiohttp import web

    from collector.app import SERVER_OPTIONS, create_app
    from collector.keys import StoreLink
    os.setpgrp()  # a terminal's Ctrl-C reaches the supervisor only, which stops workers in order
    setup_logging(role=f"worker-{index}")
    app = create_app(settings, writer=f"w{index}", store_link=StoreLink(link_url, link_token))
    cfg = settings.collector
    web.run_app(
        app, host=cfg.host, port=cfg.port, reuse_port=True, access_log=None, print=None,
        # No handler cancellation: a request whose client went away still finishes its
        # spool append; the events are kept either way, and a retry dedups by event id.
        shutdown_timeout=5,
        # Slow clients and oversized headers: aiohttp's limits, stated here.
        # aiohttp's keep-alive timer also runs from the moment a connection opens, so a
        # client that trickles its headers (slow-loris) is cut off after idle_timeout_s.
        keepalive_timeout=cfg.idle_timeout_s, max_line_size=8190, max_field_size=8190, max_headers=64, **SERVER_OPTIONS,
    )


def serve(settings: Settings) -> int:
    setup_logging(role="supervisor")
    cfg = settings.collector
    Path(cfg.spool_dir).mkdir(parents=True, exist_ok=True)
    workers = cfg.workers or os.cpu_count() or 1
    ctx = multiprocessing.get_context("spawn")
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))

    # Per-process metric files live outside the spool: they are not data, and must not
    # compete with it for space.
    metrics_dir = Path(tempfile.mkdtemp(prefix="chainlens-metrics-"))
    metrics.prepare_multiprocess_dir(metrics_dir)
    path = admin_file(settings)
    path.unlink(missing_ok=True)
    store = ctx.Process(target=run_store_process, args=(settings,), name="chainlens-store")
    store.start()
    link = _wait_for_admin(path, store)
    if link is None:
        log.error("store process did not start")
        store.kill()
        return 1
    procs: dict[int, BaseProcess] = {}
    started_at: dict[int, float] = {}
    quick_exits: dict[int, int] = {}

    def start_worker(i: int) -> None:
        proc = ctx.Process(target=run_worker, args=(settings, i, link["url"], link["token"]), name=f"chainlens-w{i}")
        proc.start()
        procs[i], started_at[i] = proc, time.monotonic()

    for i in range(workers):
        start_worker(i)
    log.info("serving", extra={"url": cfg.url(), "workers": workers, "pid": os.getpid()})
    print(f"chainlens collector on {cfg.url()} ({workers} workers)", file=sys.stderr, flush=True)
    failed = False
    while not stopping and not failed:
        time.sleep(0.2)
        for i, proc in list(procs.items()):
            if not proc.is_alive() and not stopping:
                metrics.mark_process_dead(proc.pid or 0)
                # A worker that dies right after starting (the port is taken, say) would
                # crash-loop: give up after three quick exits instead.
                quick = time.monotonic() - started_at[i] < QUICK_EXIT_S
                quick_exits[i] = quick_exits.get(i, 0) + 1 if quick else 0
                if quick_exits[i] >= 3:
                    log.error("worker keeps exiting at start; stopping (is the port in use?)",
                              extra={"worker": i, "exitcode": proc.exitcode, "port": cfg.port})
                    failed = True
                    break
                log.error("worker exited; restarting", extra={"worker": i, "exitcode": proc.exitcode})
                start_worker(i)
        if not store.is_alive() and not stopping:
            log.error("store process exited", extra={"exitcode": store.exitcode})
            for proc in procs.values():
                proc.terminate()
            return 1
    log.info("stopping: draining workers, then the spool")
    for proc in procs.values():
        _signal(proc, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WORKERS_S
    for proc in procs.values():
        proc.join(max(0.1, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
    _signal(store, signal.SIGTERM)
    store.join(STOP_STORE_S)
    if store.is_alive():
        log.error("store process did not drain in time; the spool keeps the rest for the next start")
        store.kill()
        return 1
    shutil.rmtree(metrics_dir, ignore_errors=True)
    log.info("stopped")
    return 1 if failed else 0


def _signal(proc: BaseProcess, sig: int) -> None:
    if proc.pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)


def _wait_for_admin(path: Path, store: BaseProcess, timeout: float = 120) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and store.is_alive():
        try:
            info = orjson.loads(path.read_bytes())
            if info.get("pid") == store.pid:
                return info
        except (FileNotFoundError, orjson.JSONDecodeError):
            pass
        time.sleep(0.05)
    return None
