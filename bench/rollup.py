"""Rollup cost at scale on the embedded store.

    .venv/bin/python bench/rollup.py [--sessions 1540000] [--days 7]

Generates about 10 million events (1.54 million sessions over 7 days, 3 to 10
events each, bots, obstacles, select-step props, a product's items from the
product step on, search terms, orders, signed-in buyers and visitors who buy
again included) straight into an embedded store with one INSERT … SELECT, then
times:
- the full rollup (every table, every day) and the process's peak RSS during it;
- one more day of traffic, then the incremental rollup (only that day is
  recomputed), and the ratio of the two;
- each cookbook query that reads rollup tables (docs/queries.md), median of 5 runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chainlens.core.loading import from_mapping  # noqa: E402
from chainlens.store_access import site_parameters  # noqa: E402
from ingestion import store  # noqa: E402
from ingestion.rollup import rollup  # noqa: E402
from ingestion.tables import NAMES as TABLES  # noqa: E402

GENERATE = """
INSERT INTO events (site_id, event_id, session_id, anon_id, session_number, type, step, name, ts, client_ts,
                    received_at, url, referrer, props, device, is_bot, order_id, value, currency, user_id)
WITH ['discover', 'search', 'select', 'cart', 'checkout.info', 'checkout.shipping', 'checkout.payment',
      'checkout.review', 'purchase'] AS chain,
     ['shipping_cost_shown', 'payment_declined', 'account_required', 'out_of_stock'] AS kinds,
     -- a product per session (one of 200) on its product, cart, checkout and purchase steps
     concat('[["p', toString(bitShiftRight(h, 27) % 200), '","Product ', toString(bitShiftRight(h, 27) % 200),
            '"]]') AS item
SELECT 'demo', generateUUIDv4(s * 16 + j), concat('s', toString(s)), concat('a', toString(h % 1000000)),
       1 + (h % 3 = 0),
       multiIf(j % 4 = 3, 'obstacle', j = 1 AND h % 10 < 7, 'track', j % 4 = 1, 'step', 'page') AS type,
       chain[least(depth, 1 + intDiv(j * depth, n))] AS step,
       multiIf(type = 'obstacle', kinds[1 + bitShiftRight(h, 3) % 4], type = 'track', 'engage', '') AS name,
       t0 + toIntervalMillisecond(j * (20000 + bitShiftRight(h, 13) % 90000)) AS ts, ts, {received:DateTime64(3)},
       concat('https://shop.example/', replaceAll(step, '.', '/')),
       ['', 'https://www.google.com/', 'https://blog.example/post'][1 + bitShiftRight(h, 17) % 3],
       multiIf(step = 'select' AND type = 'step',
               map('in_stock', if(h % 10 < 9, 'true', 'false'), 'ship_days', toString(bitShiftRight(h, 5) % 5),
                   'clicks', toString(j), 'item_list', item, 'item_amounts', '[[19.9,1.0]]'),
               indexOf(chain, step) >= 4 AND type = 'step',
               map('item_list', item, 'item_amounts', '[[19.9,1.0]]', 'items', '1'),
               step = 'search' AND type = 'page',  -- a term of 300, the first 30 most searched
               map('search_term', concat('term ', toString(if(bitShiftRight(h, 29) % 2 = 0, bitShiftRight(h, 31) % 30,
                                                                 bitShiftRight(h, 31) % 300))),
                   'clicks', toString(j)),
               j = 0 AND bitShiftRight(h, 19) % 4 = 0,  -- a quarter of the sessions land from a campaign
               map('utm_source', ['news', 'insta', 'ads'][1 + bitShiftRight(h, 21) % 3], 'utm_medium', 'email',
                   'utm_campaign', concat('c', toString(bitShiftRight(h, 23) % 20))),
               type = 'page', map('clicks', toString(j)), map()),
       ['desktop', 'mobile', 'tablet'][1 + bitShiftRight(h, 7) % 3], h % 50 = 0,
       -- a purchase is an order (its session's id), 39.8 EUR; a visitor (one of a million) often
       -- buys again in another session, and a third of the buyers are signed in
       if(step = 'purchase', concat('o', toString(s)), ''), if(step = 'purchase', 39.8, NULL),
       if(step = 'purchase', 'EUR', ''),
       if(step = 'purchase' AND bitShiftRight(h, 33) % 3 = 0, concat('u', toString(h % 1000000)), '')
FROM
(
    SELECT number + {first:UInt64} AS s, cityHash64(s) AS h,
           3 + h % 8 AS n,  -- events per session: 3..10
           -- funnel depth 1..9, deep sessions rarer
           least(9, 1 + toUInt32(floor(-log((bitShiftRight(h, 11) % 1000 + 1) / 1001) * 2.2))) AS depth,
           {start:DateTime64(3)} + toIntervalMillisecond(intDiv(number * {span_ms:UInt64}, {count:UInt64})) AS t0
    FROM numbers({count:UInt64})
)
ARRAY JOIN range(n) AS j
"""


def generate(client: Any, *, first: int, count: int, start: dt.datetime, days: int, received: dt.datetime) -> int:
    client.command(GENERATE, parameters={"first": first, "count": count, "start": start,
                                         "span_ms": days * 86_400_000 - 3 * 3_600_000, "received": received})
    return int(client.query("SELECT count() FROM events").result_rows[0][0])


@dataclass
class Week:
    """A rolled-up week of generated events in an embedded store (the dashboard and forget benches)."""

    client: Any
    settings: Any
    now: dt.datetime
    work: Path


def rolled_up_week(sessions: int, keep: Path | None, prefix: str) -> Week:
    """`sessions` over 7 days generated and rolled up in a fresh store, or the store an earlier
    run left in `keep` (then `now` is a day past its last event)."""
    work = keep or Path(tempfile.mkdtemp(prefix=prefix))
    reuse = bool(keep and (work / "db").exists())
    settings = from_mapping({"store": {"dsn": f"chdb://{work}/db"}, "collector": {"spool_dir": str(work / "spool")}})
    client = store.connect(settings.store.dsn)
    store.ensure_schema(client)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    if reuse:
        last = client.query("SELECT max(ts) FROM events").result_rows[0][0]
        print(f"the store in {work}, as an earlier run left it")
        return Week(client, settings, last.replace(tzinfo=dt.UTC) + dt.timedelta(days=1), work)
    start = (now - dt.timedelta(days=8)).replace(hour=0, minute=0, second=0)
    total = generate(client, first=0, count=sessions, start=start, days=7, received=now - dt.timedelta(days=1))
    t = time.monotonic()
    rollup(client, settings, now=now)
    print(f"{total:,} events in {sessions:,} sessions over 7 days, rolled up in {time.monotonic() - t:.1f} s")
    return Week(client, settings, now, work)


class PeakRss:
    """Samples this process's resident memory (the embedded engine lives here too)."""

    def __init__(self) -> None:
        self.peak, self._stop = 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            text = Path("/proc/self/status").read_text()
            kb = int(re.search(r"VmRSS:\s+(\d+)", text).group(1))  # type: ignore[union-attr]
            self.peak = max(self.peak, kb * 1024)
            time.sleep(0.02)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def rss() -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024  # type: ignore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=1_540_000)
    parser.add_argument("--days", type=int, default=7)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="chainlens-rollup-bench-"))
    settings = from_mapping({"store": {"dsn": f"chdb://{work}/db"}, "collector": {"spool_dir": str(work / "spool")}})
    client = store.connect(settings.store.dsn)
    store.ensure_schema(client)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    start = (now - dt.timedelta(days=args.days + 1)).replace(hour=0, minute=0, second=0)
    t = time.monotonic()
    total = generate(client, first=0, count=args.sessions, start=start, days=args.days,
                     received=now - dt.timedelta(days=1))
    print(f"generated {total:,} events in {args.sessions:,} sessions over {args.days} days "
          f"({time.monotonic() - t:.1f} s)")
    baseline_rss = rss()
    with PeakRss() as peak:
        t = time.monotonic()
        full = rollup(client, settings, now=now)[0]
        full_s = time.monotonic() - t
    rows = {name: client.query(f"SELECT count() FROM {name}").result_rows[0][0] for name in TABLES}
    print(f"full rollup: {full_s:.2f} s for {len(full.days)} days, {full.sessions:,} sessions; "
          f"peak RSS {peak.peak / 2**30:.2f} GiB (before: {baseline_rss / 2**30:.2f} GiB)")
    built = sum(full.table_seconds.values())
    print("  time per table (share of the full rollup): " + ", ".join(
        f"{k} {v:.2f} s ({v / full_s:.0%})" for k, v in full.table_seconds.items()))
    print(f"  partition swaps and the rest: {full_s - built:.2f} s ({(full_s - built) / full_s:.0%})")
    print("  rows: " + ", ".join(f"{k} {v:,}" for k, v in rows.items()))

    day_sessions = args.sessions // args.days
    new_start = start + dt.timedelta(days=args.days)
    added = generate(client, first=args.sessions, count=day_sessions, start=new_start, days=1, received=now) - total
    later = now + dt.timedelta(days=1, hours=1)
    with PeakRss() as peak_inc:
        t = time.monotonic()
        inc = rollup(client, settings, now=later)[0]
        inc_s = time.monotonic() - t
    print(f"one more day: {added:,} events; incremental rollup {inc_s:.2f} s for {len(inc.days)} day(s) "
          f"{[d.isoformat() for d in inc.days]}, {inc.sessions:,} sessions; peak RSS {peak_inc.peak / 2**30:.2f} GiB")
    print(f"incremental / full: {inc_s / full_s:.2f} (the new day is {1 / (args.days + 1):.2f} of the history)")

    queries = re.findall(r"```sql\n(.*?)```", (ROOT / "docs" / "queries.md").read_text(), re.S)
    print("cookbook queries on rollup tables (median of 5):")
    for i, query in enumerate(queries, start=1):
        if "FROM events" in query or "events_rejected" in query:
            continue
        times = []
        for _ in range(5):
            t = time.perf_counter()
            client.query(query, parameters=site_parameters(settings.sites[0], query))
            times.append((time.perf_counter() - t) * 1000)
        print(f"  q{i:<3} {statistics.median(times):7.1f} ms")
    print(f"max RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    client.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
