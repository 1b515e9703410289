"""The loader alone: spool → embedded ClickHouse, as fast as it goes.

    .venv/bin/python bench/loader.py [--events 2000000]

Fills a spool with real event rows (built by the accept path's own validation
from beacons like the snippet's) in two frame shapes, then times the loader
draining each into a fresh embedded store, with nothing else running:

- one request per frame: a spool written by a collector that frames each request
  on its own (a quiet one: one request per group commit);
- 40 requests per frame: one group commit of a loaded collector (BENCHMARKS.md,
  "Collector speed, round 2", measured ~40 single-event requests per fsync).

Prints events/s, the process's CPU per event (user + system, the engine's threads
included), rows per insert, and checks that every event is in the store once.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chainlens.core.fields import Client  # noqa: E402
from chainlens.core.loading import from_mapping  # noqa: E402
from chainlens.core.rows import validate_event  # noqa: E402
from chainlens.core.spoolfile import EVENTS, encode_payload, rows_body  # noqa: E402
from ingestion import loader as loader_module  # noqa: E402
from ingestion.loader import Loader  # noqa: E402
from ingestion.runner import StoreRunner  # noqa: E402

SEGMENT_BYTES = 64 << 20  # the accept path's segment size


def rows(count: int) -> list[list]:
    """`count` distinct event rows, each as the accept path builds it."""
    site = from_mapping({"sites": [{"id": "demo", "origins": ["https://shop.example"]}]}).sites[0]
    client = Client(device="mobile", browser="Chrome", os="Android", is_bot=False)
    now = int(time.time() * 1000)
    steps = ["cart", "checkout.info", "checkout.shipping", "checkout.payment", "purchase"]
    out = []
    for n in range(count):
        raw = {"id": str(uuid.UUID(int=n + 1, version=4)), "type": "step", "ts": now - 1000, "sid": f"s{n // 5}",
               "aid": f"a{n // 20}", "step": steps[n % 5], "url": f"https://shop.example/{steps[n % 5]}",
               "props": {"items": n % 7}}
        out.append(validate_event(raw, site=site, client=client, received_ms=now, sent_at=now))
    return out


def write_spool(root: Path, all_rows: list[list], per_frame: int) -> int:
    """The rows as one writer's segments, `per_frame` rows to a frame; returns the bytes written."""
    writer = root / "w0"
    writer.mkdir(parents=True)
    now = int(time.time() * 1000)
    segments: list[bytearray] = [bytearray()]
    for start in range(0, len(all_rows), per_frame):
        chunk = all_rows[start:start + per_frame]
        if len(segments[-1]) >= SEGMENT_BYTES:
            segments.append(bytearray())
        segments[-1] += encode_payload(EVENTS, now, len(chunk), rows_body(chunk))
    for number, data in enumerate(segments, 1):
        (writer / f"{number:012d}.seg").write_bytes(data)
    return sum(len(d) for d in segments)


async def drain(root: Path, runner: StoreRunner) -> tuple[float, float, float, int, int]:
    """(seconds, CPU seconds, seconds in the store's insert, inserts, events in the store) for the
    loader to empty the spool."""
    await runner.call(lambda c: c.command("TRUNCATE TABLE events"))
    loader = Loader(root, runner, interval=0.0)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    inserting = 0.0
    while await loader.load_once():
        inserting += loader.last_insert_s
    seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime
    stored = await runner.call(lambda c: int(c.query("SELECT count() FROM events FINAL").result_rows[0][0]))
    return seconds, cpu, inserting, loader.batches, stored


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2_000_000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="chainlens-loader-"))
    print(f"machine: {os.cpu_count()} cores; building {args.events:,} event rows …")
    all_rows = rows(args.events)
    print(f"read chunk per segment and pass: {loader_module.READ_CHUNK >> 20} MiB\n")
    asyncio.run(run(work, all_rows))
    shutil.rmtree(work, ignore_errors=True)


async def run(work: Path, all_rows: list[list]) -> None:
    runner = StoreRunner(f"chdb://{work}/db")
    await runner.start()
    events = len(all_rows)
    for per_frame in (1, 40):
        root = work / f"spool-{per_frame}"
        size = write_spool(root, all_rows, per_frame)
        seconds, cpu, inserting, inserts, stored = await drain(root, runner)
        print(f"{per_frame:>2} request(s) per frame: {events / seconds:>9,.0f} events/s  "
              f"CPU {cpu / events * 1e6:4.2f} µs/event  {inserts} inserts of "
              f"{events / max(1, inserts):,.0f} rows, {inserting / seconds:.0%} of the time in the store's insert "
              f"({size / 1e6:,.0f} MB of spool, {seconds:.1f} s)")
        assert stored == events, f"{stored} events in the store, {events} spooled"
    await runner.close()
    print("\nevery event in the store once: yes (target >= 200,000 events/s)")


if __name__ == "__main__":
    main()
