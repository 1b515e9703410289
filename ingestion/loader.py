"""The load path: spool → ClickHouse, in order, exactly once.

Each pass takes everything the spool holds past the checkpoint (up to
`max_frames` frames, each a group commit of the accept path, and `READ_CHUNK`
bytes of each segment), records the byte ranges as `pending`, inserts them with a
deduplication token derived from those ranges, then moves the checkpoint and
removes sealed segments that are fully loaded. A crash between the insert and
the checkpoint replays the same ranges with the same token, which ClickHouse
ignores (`non_replicated_deduplication_window`, see the schema), and
`event_id` dedup covers the rest (a client retry, a segment replayed after a
lost checkpoint).

Under load a pass runs at most once per `interval` seconds, so inserts are
large and rare, as MergeTree wants them.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from chainlens.core import metrics
from chainlens.core.spoolfile import (
    EVENTS,
    REJECTED,
    Checkpoint,
    decode_rows,
    open_segments,
    read_frames,
    segments,
    spool_identity,
)
from ingestion import store
from ingestion.runner import StoreRunner

log = logging.getLogger(__name__)
READ_CHUNK = 16 << 20


@dataclass
class Batch:
    spool: str  # the spool's identity
    ranges: list[list[Any]]  # [segment, start, end, end_after_skip]
    events: bytes  # JSONCompactEachRow
    rejected: bytes
    event_count: int
    rejected_count: int

    @property
    def token(self) -> str:
        key = orjson.dumps([self.spool, [r[:3] for r in self.ranges]])
        return "spool-" + hashlib.sha256(key).hexdigest()[:32]


class Loader:
    def __init__(
        self, root: Path, runner: StoreRunner, *, max_frames: int = 50_000, interval: float = 1.0,
        max_backoff: float = 30.0,
    ) -> None:
        self.root, self.runner = root, runner
        self.max_frames, self.interval, self.max_backoff = max_frames, interval, max_backoff
        self.checkpoint = Checkpoint.load(root)
        self.identity = spool_identity(root)
        self.inserted_rows = 0
        self.batches = 0
        self.last_batch_rows = 0
        self.last_insert_s = 0.0
        self.skipped_bytes = 0
        self.oldest_unloaded_ms: int | None = None

    async def run(self, stopping: asyncio.Event) -> None:
        """Load until `stopping` is set, then drain what the spool still holds."""
        backoff = self.interval
        while True:
            started = time.monotonic()
            try:
                loaded = await self.load_once()
                backoff = self.interval
            except Exception as exc:  # the store is down or refused the batch: retry, never drop
                if stopping.is_set():
                    log.error("stopping with the store failing; the spool keeps the backlog for the next start",
                              extra={"error": str(exc)[:300]})
                    return
                log.warning("insert failed; retrying", extra={"error": str(exc)[:300], "retry_in_s": backoff})
                await _wait(stopping, backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            if stopping.is_set():
                if loaded == 0:
                    return
                continue
            # At most one pass per interval; wake early only to shut down.
            await _wait(stopping, max(0.0, self.interval - (time.monotonic() - started)))

    async def load_once(self) -> int:
        batch = await asyncio.to_thread(self._plan)
        if batch is None:
            return 0
        if batch.event_count or batch.rejected_count:
            started = time.monotonic()
            try:
                await self.runner.call(self._insert, batch)
            except Exception:
                metrics.STORE_ERRORS.inc()
                raise
            self.last_insert_s = time.monotonic() - started
            metrics.INSERT_SECONDS.observe(self.last_insert_s)
            metrics.BATCH_ROWS.observe(batch.event_count + batch.rejected_count)
            self.batches += 1
            self.last_batch_rows = batch.event_count
            self.inserted_rows += batch.event_count
        await asyncio.to_thread(self._commit, batch)
        return batch.event_count + batch.rejected_count or 1

    def _insert(self, client: Any, batch: Batch) -> None:
        store.insert_events(client, batch.events, token=batch.token)
        store.insert_rejected(client, batch.rejected, token=batch.token + "-r")

    def _plan(self) -> Batch | None:
        cp = self.checkpoint
        if cp.pending:  # a batch that may or may not have reached the store: replay it exactly
            return self._read(cp.pending)
        paths = segments(self.root)
        open_ = open_segments(paths)
        ranges: list[list[Any]] = []
        payloads: list[bytes] = []
        frames = 0
        for path in paths:
            rel = str(path.relative_to(self.root))
            start = cp.done.get(rel, 0)
            size = path.stat().st_size
            if start >= size:
                continue
            scan = read_frames(path, start, max_bytes=READ_CHUNK)
            end_after = scan.end
            if scan.bad and path not in open_:
                end_after = size
                self.skipped_bytes += size - scan.end
                log.error("torn spool tail skipped", extra={"segment": rel, "offset": scan.end,
                                                             "bytes": size - scan.end})
            if scan.end > start or end_after > start:
                ranges.append([rel, start, scan.end, end_after])
                payloads.extend(scan.payloads)
                frames += len(scan.payloads)
            if frames >= self.max_frames:
                break
        if not ranges:
            self.oldest_unloaded_ms = None
            return None
        cp.pending = ranges
        cp.save(self.root)
        return self._batch(ranges, payloads)

    def _read(self, ranges: list[list[Any]]) -> Batch:
        payloads: list[bytes] = []
        for rel, start, end, _ in ranges:
            path = self.root / rel
            if not path.exists():
                # Segments are removed only once their rows are in the store; a spool written by
                # an older version could lose the race with its checkpoint. The replay keeps its
                # token, so the store drops what it already has.
                log.warning("a segment of the pending batch is gone; it was loaded", extra={"segment": rel})
                continue
            if end > start:
                payloads.extend(read_frames(path, start, max_bytes=end - start).payloads)
        return self._batch(ranges, payloads)

    def _batch(self, ranges: list[list[Any]], payloads: list[bytes]) -> Batch:
        bodies: dict[bytes, list[bytes]] = {EVENTS: [], REJECTED: []}
        counts = {EVENTS: 0, REJECTED: 0}
        oldest: int | None = None
        for payload in payloads:
            kind, received_ms, count, body = decode_rows(payload)
            bodies[kind].append(body)
            counts[kind] += count
            oldest = received_ms if oldest is None else min(oldest, received_ms)
        self.oldest_unloaded_ms = oldest
        return Batch(self.identity, ranges, b"\n".join(bodies[EVENTS]), b"\n".join(bodies[REJECTED]),
                     counts[EVENTS], counts[REJECTED])

    def _commit(self, batch: Batch) -> None:
        cp = self.checkpoint
        for rel, _, _, end_after in batch.ranges:
            cp.done[rel] = end_after
        cp.pending = []
        # Recorded before any segment goes: a crash in between must never leave a pending
        # batch that names a removed segment.
        cp.save(self.root)
        open_ = open_segments(segments(self.root))
        removed = False
        for rel in list(cp.done):
            path = self.root / rel
            if not path.exists():
                del cp.done[rel]
                removed = True
            elif path not in open_ and cp.done[rel] >= path.stat().st_size:
                path.unlink()
                del cp.done[rel]
                removed = True
        if removed:
            cp.save(self.root)
        self.oldest_unloaded_ms = None

    def backlog_bytes(self) -> int:
        total = 0
        for path in segments(self.root):
            try:
                total += path.stat().st_size - self.checkpoint.done.get(str(path.relative_to(self.root)), 0)
            except FileNotFoundError:
                pass
        return total


async def _wait(event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout=seconds)
    except TimeoutError:
        pass
