"""A forget on a store of 10 million events, and its dry run.

    .venv/bin/python bench/forget.py [--sessions 1540000] [--keep DIR]

The events are bench/rollup.py's (1.54 million sessions over 7 days, about 10 million
events), generated into an embedded store and rolled up (or the store an earlier run left
in DIR). Then one visitor of the store (its sessions spread over the week) is forgotten:
the dry run's output, then the forget's time, with what it removed and rebuilt. Each run
forgets another visitor, so a kept store can be asked again.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rollup import rolled_up_week  # noqa: E402  (bench/rollup.py)

from chainlens.privacy import summary_text  # noqa: E402
from ingestion import lifecycle  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=1_540_000)
    parser.add_argument("--keep", type=Path, help="keep the rolled-up store here, and reuse it when it is there")
    args = parser.parse_args()
    week = rolled_up_week(args.sessions, args.keep, "chainlens-forget-bench-")
    client, site, now, work = week.client, week.settings.sites[0], week.now, week.work
    events = client.query("SELECT count() FROM events").result_rows[0][0]
    # A visitor with the most sessions among those not forgotten yet.
    (visitor, sessions), = client.query(
        "SELECT anon_id, uniqExact(session_id) AS n FROM events WHERE anon_id != '' GROUP BY anon_id "
        "ORDER BY n DESC, anon_id "
        "LIMIT 1").result_rows
    print(f"store: {events:,} events; forgetting visitor {visitor} ({sessions} sessions)\n")
    t = time.monotonic()
    dry = lifecycle.forget(client, site, "visitor", visitor, timeout_s=1800, now=now, dry_run=True)
    dry_s = time.monotonic() - t
    print(f"$ chainlens forget demo --visitor {visitor} --dry-run   ({dry_s:.1f} s)")
    print(summary_text(dry))
    t = time.monotonic()
    done = lifecycle.forget(client, site, "visitor", visitor, timeout_s=1800, now=now)
    took = time.monotonic() - t
    print(f"\n$ chainlens forget demo --visitor {visitor}   ({took:.1f} s)")
    print(summary_text(done))
    print(f"\nforget: {took:.1f} s on {events:,} events (target: under 60 s): finding and removing the rows "
          f"{done['seconds_removing']:.1f} s, rebuilding {done['days_rebuilt']} days "
          f"{done['seconds_rebuilding']:.1f} s")
    client.close()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
