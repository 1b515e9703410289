"""The accept path's write-ahead spool: append a frame, fsync, then answer.

Group commit: a request appends its frame and waits for an fsync that started
after its write. While one fsync runs, later requests queue behind the next
one, so under load many requests share each fsync and an idle collector still
answers after a single one. The file format is in `ingestion.spoolfile`.
"""

from __future__ import annotations

import asyncio
import errno
import os
import time
from pathlib import Path

from chainlens import metrics
from ingestion.spoolfile import SUFFIX, fsync_dir, spool_bytes


class SpoolFull(Exception):
    """The spool is at its byte cap or the disk is full: answer 503 with Retry-After."""


class SpoolWriter:
    def __init__(self, root: Path, writer: str, *, max_bytes: int, segment_bytes: int = 64 << 20) -> None:
        self.root, self.dir = root, root / writer
        self.max_bytes, self.segment_bytes = max_bytes, segment_bytes
        self.fsyncs = 0
        self._fd = -1
        self._offset = 0
        self._written = 0  # frames written
        self._synced = 0  # frames known durable
        self._sync_task: asyncio.Task[None] | None = None
        self._rotate_lock = asyncio.Lock()
        self._scanned_bytes = 0
        self._scanned_at = 0.0
        self._since_scan = 0

    def open(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._open_next()

    def _open_next(self) -> None:
        numbers = [int(p.stem) for p in self.dir.glob("*" + SUFFIX) if p.stem.isdigit()]
        path = self.dir / f"{max(numbers, default=0) + 1:012d}{SUFFIX}"
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o600)
        fsync_dir(self.dir)  # the new file's name must survive a crash too
        self._offset = 0

    def used_bytes(self) -> int:
        """Spool bytes of all writers; the directory is rescanned at most twice a second."""
        now = time.monotonic()
        if now - self._scanned_at > 0.5:
            self._scanned_bytes, self._scanned_at, self._since_scan = spool_bytes(self.root), now, 0
            metrics.SPOOL_BYTES.set(self._scanned_bytes)
        return self._scanned_bytes + self._since_scan

    async def append(self, data: bytes) -> None:
        """Write framed payloads (`spoolfile.encode_rows`) and return once they are on disk.

        SpoolFull when they cannot be.
        """
        if self._offset >= self.segment_bytes:
            await self._rotate()
        if self.used_bytes() + len(data) > self.max_bytes:
            raise SpoolFull("spool is at collector.spool_max_bytes")
        try:
            written = os.write(self._fd, data)
            while written < len(data):
                written += os.write(self._fd, data[written:])
        except OSError as exc:
            # Leave no torn frame behind a full disk: cut the file back to the last good frame.
            os.ftruncate(self._fd, self._offset)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise SpoolFull("disk full") from exc
            raise
        self._offset += len(data)
        self._since_scan += len(data)
        self._written += 1
        await self._commit(self._written)

    async def _commit(self, upto: int) -> None:
        while self._synced < upto:
            if self._sync_task is None:
                self._sync_task = asyncio.get_running_loop().create_task(self._fsync())
            await asyncio.shield(self._sync_task)

    async def _fsync(self) -> None:
        target, fd = self._written, self._fd
        try:
            await asyncio.get_running_loop().run_in_executor(None, os.fdatasync, fd)
            self.fsyncs += 1
            metrics.FSYNCS.inc()
            self._synced = max(self._synced, target)
        finally:
            self._sync_task = None

    async def _rotate(self) -> None:
        async with self._rotate_lock:
            if self._offset < self.segment_bytes:
                return
            await self._commit(self._written)
            os.close(self._fd)
            self._open_next()

    async def close(self) -> None:
        if self._fd >= 0:
            await self._commit(self._written)
            os.close(self._fd)
            self._fd = -1
