"""The accept path's write-ahead spool: append rows, fsync, then answer.

Group commit: a request adds its rows to the waiting batch and waits. At the end
of the event-loop turn the batch goes to the spool's sync thread, which writes it
as one frame per table (events, rejected) with one `write` and runs its
`fdatasync` while the loop goes on reading requests; those form the next batch,
which the sync thread takes as soon as the sync ends, without waiting for a turn
of the loop. Requests arriving together share both system calls, a slow disk
grows the batches instead of stalling the loop, and the loader reads one frame
per commit, not one per request. Every request is answered only after
the fdatasync that covers its bytes. The file format is in
`chainlens.core.spoolfile`.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from chainlens.core import metrics
from chainlens.core.spoolfile import (
    EVENTS,
    HEADER,
    PAYLOAD,
    REJECTED,
    SUFFIX,
    encode_payload,
    fsync_dir,
    lock_segment,
    rows_body,
    spool_bytes,
)

FRAME_BYTES = HEADER.size + PAYLOAD.size


class SpoolFull(Exception):
    """The spool is at its byte cap or the disk is full: answer 503 with Retry-After."""


class _Rows:
    """One table's rows waiting for the next commit: `JSONCompactEachRow` lines."""

    __slots__ = ("body", "count", "oldest_ms")

    def __init__(self) -> None:
        self.body, self.count, self.oldest_ms = bytearray(), 0, 0

    def add(self, body: bytes, count: int, received_ms: int) -> None:
        if self.count:
            self.body += b"\n"
        else:
            self.oldest_ms = received_ms
        self.body += body
        self.count += count

    def frame(self, kind: bytes) -> bytes:
        return encode_payload(kind, self.oldest_ms, self.count, self.body)


class _Batch:
    """The requests waiting for the next commit: their rows and their futures."""

    __slots__ = ("events", "rejected", "waiters")

    def __init__(self) -> None:
        self.events, self.rejected = _Rows(), _Rows()
        self.waiters: list[asyncio.Future[None]] = []

    def waiting_bytes(self) -> int:
        return len(self.events.body) + len(self.rejected.body)


class SpoolWriter:
    def __init__(self, root: Path, writer: str, *, max_bytes: int, segment_bytes: int = 64 << 20) -> None:
        self.root, self.dir = root, root / writer
        self.max_bytes, self.segment_bytes = max_bytes, segment_bytes
        self.fsyncs = 0
        self._fd = -1
        self._offset = 0
        # Shared by the loop and the sync thread, under the lock: the waiting batch, whether
        # the sync thread is at work, and whether the loop has asked it to start.
        self._lock = threading.Lock()
        self._batch = _Batch()
        self._busy = self._starting = False
        self._draining: Future[None] | None = None  # the sync thread's run, while it works
        self._sync_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool-sync")
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
        lock_segment(self._fd)  # open while held: the loader never removes it under us
        fsync_dir(self.dir)  # the new file's name must survive a crash too
        self._offset = 0

    def used_bytes(self) -> int:
        """Spool bytes of all writers; the directory is rescanned at most twice a second."""
        now = time.monotonic()
        if now - self._scanned_at > 0.5:
            self._scanned_bytes, self._scanned_at, self._since_scan = spool_bytes(self.root), now, 0
            metrics.SPOOL_BYTES.set(self._scanned_bytes)
        return self._scanned_bytes + self._since_scan

    async def append(self, received_ms: int, rows: Sequence[Any], rejected: Sequence[Any] = ()) -> None:
        """Spool a request's rows and return once they are on disk; SpoolFull when they cannot be."""
        events = rows_body(rows) if rows else b""
        refused = rows_body(rejected) if rejected else b""
        waiting = self._batch.waiting_bytes()
        if self.used_bytes() + waiting + len(events) + len(refused) + 2 * FRAME_BYTES > self.max_bytes:
            raise SpoolFull("spool is at collector.spool_max_bytes")
        loop = asyncio.get_running_loop()
        # One future per request: a cancelled request cancels its own wait, never the commit.
        waiter = loop.create_future()
        with self._lock:
            batch = self._batch
            if rows:
                batch.events.add(events, len(rows), received_ms)
            if rejected:
                batch.rejected.add(refused, len(rejected), received_ms)
            batch.waiters.append(waiter)
            start = not self._busy and not self._starting
            self._starting |= start
        if start:  # at the end of this loop turn, so that its requests share the commit
            loop.call_soon(self._start, loop)
        await waiter

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._starting = False
            if self._busy or not self._batch.waiters:
                return
            self._busy = True
        self._draining = self._sync_thread.submit(self._drain, loop)

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """On the sync thread: write and fdatasync batches until none waits. The batch that
        gathered during a sync is written as soon as it ends, without a turn of the loop."""
        while True:
            with self._lock:
                batch, self._batch = self._batch, _Batch()
                if not batch.waiters:
                    self._busy = False
                    return
            # Whatever fails fails this batch's requests (503), never the thread: a stuck sync
            # thread would leave every later request waiting.
            failure: Exception | None = None
            try:
                self._write(batch.events.frame(EVENTS) + batch.rejected.frame(REJECTED))
            except SpoolFull as exc:
                failure = exc
            except Exception as exc:
                failure = SpoolFull(f"write failed: {exc}")
            else:
                try:
                    os.fdatasync(self._fd)
                except Exception as exc:
                    failure = SpoolFull(f"fsync failed: {exc}")
            loop.call_soon_threadsafe(self._answer, batch.waiters, failure)

    def _answer(self, waiters: list[asyncio.Future[None]], failure: Exception | None) -> None:
        if failure is not None:
            self._fail(waiters, failure)
            return
        self.fsyncs += 1
        metrics.count(metrics.FSYNCS)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _write(self, data: bytes) -> None:
        if self._offset >= self.segment_bytes:
            self._rotate()
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

    @staticmethod
    def _fail(waiters: list[asyncio.Future[None]], exc: Exception) -> None:
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(exc)

    def _rotate(self) -> None:
        os.fdatasync(self._fd)  # whatever was written to the old segment is durable
        os.close(self._fd)
        self._open_next()

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        while True:  # each run of the sync thread ends only when no batch waits
            self._start(loop)
            if self._draining is None or self._draining.done():
                break
            await asyncio.wrap_future(self._draining)
        await asyncio.sleep(0)  # the answers the sync thread handed to the loop
        if self._fd >= 0:
            os.fdatasync(self._fd)
            os.close(self._fd)
            self._fd = -1
        self._sync_thread.shutdown(wait=True)
