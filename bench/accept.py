"""The accept path's own work on one beacon, in one process, without HTTP.

    .venv/bin/python bench/accept.py [--events 50] [--repeat 8]

The beacon is bench/collector.py's (every event a `step` on the cart with one prop), read
and checked as `/e` does: the decode (`parse`), the rows (`intake`: the cross-field check
and the row builder) and their encoding for the spool (`rows_body`), each timed alone and
then all three together. Each figure is the best of `--repeat` timings, in µs per beacon,
so that the minutes this machine runs slow count less; compare two codes in one run by
alternating them (a worktree of each, run in turn).
"""

from __future__ import annotations

import argparse
import sys
import time
import timeit
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from chainlens.core.fields import Client  # noqa: E402
from chainlens.core.loading import from_mapping  # noqa: E402
from chainlens.core.spoolfile import rows_body  # noqa: E402
from collector.beacon import intake, parse  # noqa: E402


def beacon(events: int, now: int) -> bytes:
    return orjson.dumps({"site": "demo", "sent_at": now, "events": [
        {"id": f"0000abcd-0000-4000-8000-{i:012x}", "type": "step", "ts": now, "sid": f"s{i:x}", "aid": "a",
         "step": "cart", "url": "https://shop.example/cart", "props": {"items": 3}} for i in range(events)]})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=8)
    args = parser.parse_args()
    site = from_mapping({}).site("demo")
    assert site is not None
    client = Client(device="desktop", browser="Chrome", os="Linux")
    now = int(time.time() * 1000)
    body = beacon(args.events, now)
    parsed = parse(body, max_events=max(100, args.events))
    result = intake(parsed, site=site, client=client, received_ms=now, source="e")
    assert parsed.typed and len(result.rows) == args.events and not result.rejected, "the beacon should pass"

    def rows() -> Any:
        return intake(parsed, site=site, client=client, received_ms=now, source="e")

    def whole() -> bytes:
        return rows_body(intake(parse(body, max_events=100), site=site, client=client, received_ms=now,
                                source="e").rows)

    number = max(10, 20_000 // args.events)
    print(f"one {args.events}-event beacon, µs (best of {args.repeat} timings of {number}):")
    for name, work in (("decode", lambda: parse(body, max_events=100)), ("rows", rows),
                       ("encode", lambda: rows_body(result.rows)), ("the whole request", whole)):
        best = min(timeit.repeat(work, number=number, repeat=args.repeat)) / number * 1e6
        print(f"  {name:18} {best:8.1f}   {best / args.events:6.2f} per event")


if __name__ == "__main__":
    main()
