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

from chainlens.core import metrics
from chainlens.core.loading import reread
from chainlens.core.logs import setup_logging
from chainlens.core.owner import Owned, Ownership, admin_file, lock_paths
from chainlens.core.settings import Settings
from collector.worker import run_worker
from ingestion.service import run_store_process

log = logging.getLogger(__name__)
STOP_WORKERS_S = 15
STOP_STORE_S = 120
QUICK_EXIT_S = 5
STORE_BACKOFF_S = (1, 2, 5, 10, 30)


def serve(settings: Settings) -> int:
    setup_logging(role="supervisor")
    Path(settings.collector.spool_dir).mkdir(parents=True, exist_ok=True)
    # One owner per spool and embedded store: a second serve stops here, before it binds
    # the port or opens anything.
    try:
        owner = Ownership(lock_paths(settings)).acquire()
    except Owned as exc:
        print(f"chainlens serve: {exc}", file=sys.stderr, flush=True)
        return 2
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    hangups: list[int] = []
    signal.signal(signal.SIGHUP, lambda *_: hangups.append(1))
    # Per-process metric files live outside the spool: they are not data, and must not
    # compete with it for space.
    metrics_dir = Path(tempfile.mkdtemp(prefix="chainlens-metrics-"))
    metrics.prepare_multiprocess_dir(metrics_dir)
    tree = Supervisor(settings, stopping, hangups)
    try:
        if not tree.start_store():
            return 1
        tree.start_workers()
        failed = tree.watch()
        return 1 if tree.stop() or failed else 0
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
        owner.release()


class Supervisor:
    """The process tree of `chainlens serve`: one store process, N accept workers."""

    def __init__(self, settings: Settings, stopping: list[int], hangups: list[int] | None = None) -> None:
        self.settings = settings
        self.stopping = stopping
        self.hangups = [] if hangups is None else hangups
        self.store_restarts = 0
        self.ctx = multiprocessing.get_context("spawn")
        self.store: BaseProcess | None = None
        self.link: dict = {}
        self.workers: dict[int, BaseProcess] = {}
        self.started_at: dict[int, float] = {}
        self.quick_exits: dict[int, int] = {}

    def start_store(self) -> bool:
        path = admin_file(self.settings)
        path.unlink(missing_ok=True)
        self.store = self.ctx.Process(target=run_store_process, args=(self.settings, os.getpid()),
                                      name="chainlens-store")
        self.store.start()
        link = _wait_for_admin(path, self.store, self.stopping)
        if link is None:
            log.error("store process did not start", extra={"exitcode": self.store.exitcode})
            self.store.kill()
            self.store.join(5)
            return False
        self.link = link
        return True

    def start_workers(self) -> None:
        cfg = self.settings.collector
        count = cfg.workers or os.cpu_count() or 1
        for i in range(count):
            self.start_worker(i)
        log.info("serving", extra={"url": cfg.url(), "workers": count, "pid": os.getpid()})
        print(f"chainlens collector on {cfg.url()} ({count} workers)", file=sys.stderr, flush=True)

    def start_worker(self, i: int) -> None:
        proc = self.ctx.Process(target=run_worker, args=(self.settings, i, os.getpid()), name=f"chainlens-w{i}")
        proc.start()
        self.workers[i], self.started_at[i] = proc, time.monotonic()

    def watch(self) -> bool:
        """Restart dead workers and a dead store process until asked to stop; True when serving failed."""
        while not self.stopping:
            time.sleep(0.2)
            for i, proc in list(self.workers.items()):
                if not proc.is_alive() and not self.stopping and not self._restart(i, proc):
                    return True
            if self.store is not None and not self.store.is_alive() and not self.stopping:
                self._restart_store()
            if self.hangups:
                self.hangups.clear()
                self._reload()
        return False

    def _reload(self) -> None:
        """SIGHUP: every process reads the settings file itself; where it reads, they run with it
        and children started later get it too. Where it does not, each keeps what it had, and the
        store process keeps the error for /readyz and `chainlens reload`."""
        self.settings, kept, error = reread(self.settings, log)
        for proc in [*self.workers.values(), *([self.store] if self.store else [])]:
            _signal(proc, signal.SIGHUP)
        if kept and not error:
            print(f"chainlens serve: reloaded; these keep their running values until a restart: {', '.join(kept)}",
                  file=sys.stderr, flush=True)

    def _restart_store(self) -> None:
        """Start the store process again, with growing pauses while it keeps failing. Workers
        keep accepting into their spools meanwhile; the new process loads what they wrote."""
        assert self.store is not None
        metrics.mark_process_dead(self.store.pid or 0)
        pause = STORE_BACKOFF_S[min(self.store_restarts, len(STORE_BACKOFF_S) - 1)]
        self.store_restarts += 1
        log.error("store process exited; restarting", extra={
            "exitcode": self.store.exitcode, "restart": self.store_restarts, "pause_s": pause})
        deadline = time.monotonic() + pause
        while time.monotonic() < deadline and not self.stopping:
            time.sleep(0.1)
        if self.stopping:
            return
        started = time.monotonic()
        if self.start_store():
            log.info("store process restarted", extra={"pid": self.store.pid,
                                                       "seconds": round(time.monotonic() - started, 1)})
            self.store_restarts = 0

    def _restart(self, i: int, proc: BaseProcess) -> bool:
        metrics.mark_process_dead(proc.pid or 0)
        # A worker that dies right after starting (the port is taken, say) would
        # crash-loop: give up after three quick exits instead.
        quick = time.monotonic() - self.started_at[i] < QUICK_EXIT_S
        self.quick_exits[i] = self.quick_exits.get(i, 0) + 1 if quick else 0
        if self.quick_exits[i] >= 3:
            log.error("worker keeps exiting at start; stopping (is the port in use?)",
                      extra={"worker": i, "exitcode": proc.exitcode, "port": self.settings.collector.port})
            return False
        log.error("worker exited; restarting", extra={"worker": i, "exitcode": proc.exitcode})
        self.start_worker(i)
        return True

    def stop(self) -> bool:
        """Workers first (they finish requests and fsync), then the store (it drains the spool).

        True when the store did not drain in time.
        """
        log.info("stopping: draining workers, then the spool")
        for proc in self.workers.values():
            _signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + STOP_WORKERS_S
        for proc in self.workers.values():
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
        if self.store is None:
            return False
        _signal(self.store, signal.SIGTERM)
        self.store.join(STOP_STORE_S)
        if self.store.is_alive():
            log.error("store process did not drain in time; the spool keeps the rest for the next start")
            self.store.kill()
            return True
        log.info("stopped")
        return False


def _signal(proc: BaseProcess, sig: int) -> None:
    if proc.pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)


def _wait_for_admin(path: Path, store: BaseProcess, stopping: list[int], timeout: float = 120) -> dict | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and store.is_alive() and not stopping:
        try:
            info = orjson.loads(path.read_bytes())
            if info.get("pid") == store.pid:
                return info
        except (FileNotFoundError, orjson.JSONDecodeError):
            pass
        time.sleep(0.05)
    return None
