"""Who owns a spool and an embedded store, and how the processes of `serve` end together.

One `chainlens serve` owns a spool directory (and, with the embedded engine,
its store directory): it holds an exclusive `flock` on `serve.lock` there, with
its pid written in, for as long as it runs. The kernel drops the lock when the
process dies, however it dies, so a stale file never blocks a start. The store
process publishes its admin address in `admin.json` beside it; commands and
accept workers read it there (docs/architecture.md, "Processes").

Children of `serve` ask the kernel to signal them when their parent dies
(`PR_SET_PDEATHSIG`), so none outlives the supervisor.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import signal
import sys
import tempfile
from pathlib import Path

from chainlens.core.settings import Settings, embedded_path, is_embedded

ADMIN_FILE = "admin.json"
LOCK_FILE = "serve.lock"
PORT_LOCK_PREFIX = "chainlens-port-"
PR_SET_PDEATHSIG = 1


class Owned(Exception):
    """Another process holds the lock."""

    def __init__(self, path: Path, pid: int | None) -> None:
        who = f"pid {pid}" if pid else "a process that did not write its pid"
        port = path.name.removeprefix(PORT_LOCK_PREFIX).removesuffix(".lock")
        what = f"listens on port {port}" if path.name.startswith(PORT_LOCK_PREFIX) else f"owns {path.parent}"
        super().__init__(f"another chainlens serve ({who}) {what}")
        self.path, self.pid = path, pid


def admin_file(settings: Settings) -> Path:
    return Path(settings.collector.spool_dir) / ADMIN_FILE


def lock_paths(settings: Settings) -> list[Path]:
    """The spool's lock, the embedded store's (beside its directory) when there is one, and the
    port's: the accept workers share their port (SO_REUSEPORT), so without it a second serve of
    the same user could bind it too and take part of the traffic."""
    paths = [Path(settings.collector.spool_dir).resolve() / LOCK_FILE]
    if is_embedded(settings.store.dsn):
        db = embedded_path(settings.store.dsn)
        paths.append(db.parent / f".{db.name}.{LOCK_FILE}")
    # By port, whatever the address: 0.0.0.0 and 127.0.0.1 on one port would split the traffic too.
    paths.append(Path(tempfile.gettempdir()) / f"{PORT_LOCK_PREFIX}{settings.collector.port}.lock")
    return paths


def holder(path: Path) -> int | None:
    """The pid written in a lock file, if any."""
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, PermissionError):
        return None
    return int(text) if text.isdigit() else None


class Ownership:
    """Exclusive locks on a spool and store, held until `release` or the process's end."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths
        self.fds: list[int] = []

    def acquire(self) -> Ownership:
        try:
            for path in self.paths:
                path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    os.close(fd)
                    if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                        raise Owned(path, holder(path)) from None
                    raise
                self.fds.append(fd)
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            self.release()
            raise
        return self

    def release(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []


def held_by(settings: Settings) -> int | None:
    """The pid of a live `serve` that holds this spool's lock, else None (the lock is free)."""
    path = lock_paths(settings)[0]
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return holder(path) or -1
    finally:
        os.close(fd)  # closing drops the shared lock taken to test it
    return None


def die_with_parent(parent: int, sig: int = signal.SIGTERM) -> None:
    """Have the kernel send `sig` to this process when its parent dies (Linux), and cover the
    moment before this call: if the parent is already gone, exit now."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:
        os._exit(1)
