"""The accept path's spool: group commit into one frame per table, fsync off the loop, answers after it."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from chainlens.core.spoolfile import EVENTS, REJECTED, decode_rows, read_frames
from collector import spool as spool_module
from collector.spool import SpoolFull, SpoolWriter


def frames(root: Path) -> list[tuple[bytes, int, int, list[Any]]]:
    (segment,) = sorted((root / "w0").glob("*.seg"))
    scan = read_frames(segment, 0, max_bytes=1 << 30)
    assert not scan.bad
    out = []
    for payload in scan.payloads:
        kind, received_ms, count, body = decode_rows(payload)
        rows = [orjson.loads(line) for line in body.split(b"\n")]
        assert len(rows) == count
        out.append((kind, received_ms, count, rows))
    return out


async def test_requests_arriving_together_share_one_frame_and_one_fsync(tmp_path: Path) -> None:
    spool = SpoolWriter(tmp_path, "w0", max_bytes=1 << 30)
    spool.open()
    await asyncio.gather(*(spool.append(1000 + n, [[f"e{n}", n]], [[f"r{n}"]] if n % 10 == 0 else [])
                           for n in range(200)))
    await spool.close()
    written = frames(tmp_path)
    assert spool.fsyncs == 1
    assert [(kind, ms, count) for kind, ms, count, _ in written] == [(EVENTS, 1000, 200), (REJECTED, 1000, 20)]
    assert written[0][3] == [[f"e{n}", n] for n in range(200)]
    assert written[1][3] == [[f"r{n}"] for n in range(0, 200, 10)]


async def test_requests_that_arrive_during_a_sync_wait_for_the_next_one(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    syncs: list[tuple[str, int, float, float]] = []  # (thread, file size at start, started, ended)
    real = os.fdatasync

    def slow_sync(fd: int) -> None:
        started, size = time.monotonic(), os.fstat(fd).st_size
        time.sleep(0.2)  # a network disk
        real(fd)
        syncs.append((threading.current_thread().name, size, started, time.monotonic()))

    monkeypatch.setattr(spool_module.os, "fdatasync", slow_sync)
    spool = SpoolWriter(tmp_path, "w0", max_bytes=1 << 30)
    spool.open()
    loop = asyncio.get_running_loop()
    answered: dict[str, float] = {}

    async def request(name: str) -> None:
        await spool.append(1, [[name]])
        answered[name] = time.monotonic()

    first = [asyncio.create_task(request(f"a{n}")) for n in range(5)]
    beat = loop.time()
    await asyncio.sleep(0.05)  # the first sync starts; the loop stays free meanwhile
    assert loop.time() - beat < 0.15, "the event loop waited for the disk"
    assert not any(task.done() for task in first)
    second = [asyncio.create_task(request(f"b{n}")) for n in range(5)]
    await asyncio.gather(*first, *second)
    commits = list(syncs)
    await spool.close()
    assert [name for name, *_ in commits] == ["spool-sync_0", "spool-sync_0"]
    assert [count for _, _, count, _ in frames(tmp_path)] == [5, 5]
    (_, first_size, _, first_end), (_, second_size, _, second_end) = commits
    assert second_size > first_size
    assert all(answered[f"a{n}"] >= first_end for n in range(5))
    # Written after the first sync began, so only the second one covers them.
    assert all(answered[f"b{n}"] >= second_end for n in range(5))


async def test_the_next_commit_starts_when_a_sync_ends_even_while_the_loop_is_busy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    starts: list[float] = []
    real = os.fdatasync

    def slow_sync(fd: int) -> None:
        starts.append(time.monotonic())
        time.sleep(0.1)
        real(fd)

    monkeypatch.setattr(spool_module.os, "fdatasync", slow_sync)
    spool = SpoolWriter(tmp_path, "w0", max_bytes=1 << 30)
    spool.open()
    first = asyncio.create_task(spool.append(1, [["a"]]))
    await asyncio.sleep(0.02)  # the first sync is under way
    second = asyncio.create_task(spool.append(2, [["b"]]))
    await asyncio.sleep(0)  # the second request is in the waiting batch
    busy_from = time.monotonic()
    time.sleep(0.5)  # the loop is busy with other requests for longer than the sync
    busy_until = time.monotonic()
    await asyncio.gather(first, second)
    commits = list(starts)
    await spool.close()
    assert len(commits) == 2
    assert busy_from < commits[1] < busy_until, "the second commit waited for a turn of the loop"
    assert [rows for *_, rows in frames(tmp_path)] == [[["a"]], [["b"]]]


async def test_a_failed_sync_fails_its_requests_and_the_next_ones_go_on(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    real, calls = os.fdatasync, []

    def failing_once(fd: int) -> None:
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(5, "Input/output error")
        real(fd)

    monkeypatch.setattr(spool_module.os, "fdatasync", failing_once)
    spool = SpoolWriter(tmp_path, "w0", max_bytes=1 << 30)
    spool.open()
    with pytest.raises(SpoolFull, match="fsync failed"):
        await spool.append(1, [["lost"]])
    await spool.append(2, [["kept"]])
    await spool.close()
    assert spool.fsyncs == 1


async def test_the_byte_cap_answers_spool_full_before_writing(tmp_path: Path) -> None:
    spool = SpoolWriter(tmp_path, "w0", max_bytes=200)
    spool.open()
    await spool.append(1, [["x" * 50]])
    with pytest.raises(SpoolFull, match="spool_max_bytes"):
        await spool.append(1, [["y" * 200]])
    await spool.close()
    assert [rows for *_, rows in frames(tmp_path)] == [[["x" * 50]]]


def test_rows_spooled_by_an_older_version_still_load() -> None:
    """Frames of kind E (events without `source`) and R (rejected rows without code, field, detail)."""
    from chainlens.core import spoolfile
    from chainlens.core.refusals import REJECTED_COLUMNS
    from chainlens.core.rows import EVENT_COLUMNS

    old_event = orjson.dumps(list(range(len(EVENT_COLUMNS) - 1)))
    old_rejected = orjson.dumps([1.5, "demo", "e", "400: body is not valid JSON", "{not"])
    for kind, line, kind_now, width in ((spoolfile.EVENTS_UNSOURCED, old_event, spoolfile.EVENTS, len(EVENT_COLUMNS)),
                                        (spoolfile.REJECTED_UNCODED, old_rejected, spoolfile.REJECTED,
                                         len(REJECTED_COLUMNS))):
        payload = spoolfile.PAYLOAD.pack(kind, 1000, 2) + line + b"\n" + line
        got_kind, received_ms, count, body = spoolfile.decode_rows(payload)
        rows = [orjson.loads(r) for r in body.split(b"\n")]
        assert (got_kind, received_ms, count) == (kind_now, 1000, 2)
        assert [len(r) for r in rows] == [width, width] and rows[0][-1] == ""
