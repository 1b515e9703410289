"""Rollup cost at scale on the embedded store.

    .venv/bin/python bench/rollup.py [--sessions 1540000] [--days 7]

Generates about 10 million events (1.54 million sessions over 7 days, 3 to 10
events each, bots, obstacles, select-step props, a product's items from the
product step on, search terms, orders, signed-in buyers and visitors who buy
again included; then each order's back-office reports and satisfaction answer, the
forms add-on's reports and the risk script's moments and outcomes) straight into an
embedded store with INSERT … SELECT, then times:
- the floor: one bare session-level pass over the same events (`FLOOR`), just before and
  just after the full rollup;
- the full rollup (every table, every day), its ratio to the floor (the mean of the two),
  and the process's peak RSS during it;
- one more day of traffic, then the incremental rollup (only that day is
  recomputed), and the ratio of the two;
- each cookbook query that reads rollup tables (docs/queries.md), median of 5 runs, right
  after the rollup and again once the store's background merges have ended.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import re
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chainlens.core.loading import from_mapping  # noqa: E402
from chainlens.store_access import site_parameters  # noqa: E402
from ingestion import store  # noqa: E402
from ingestion.rollup import rollup  # noqa: E402
from ingestion.runner import StoreRunner  # noqa: E402
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

# What comes after and around the sessions, from their own events: for each order the back
# office's reports (shipped with carrier and promise, tracking viewed, delivered, a fifth of them
# late, 8% returned with a reason) and a satisfaction answer for 45%; on the checkout's details
# step the forms add-on's reports (four fields, the postcode wrong for a fifth, a `submitted` or
# `left` report); on the payment step a risk moment for a third of the sessions (exit intent,
# idle or return after hide; a tenth held out) and the offer's outcome.
AROUND = """
INSERT INTO events (site_id, event_id, session_id, anon_id, session_number, type, step, name, ts, client_ts,
                    received_at, url, referrer, props, device, is_bot, order_id, value, currency, user_id)
SELECT site_id, generateUUIDv4(cityHash64(event_id, k)),
       if(about_order, concat('order:', order_id), session_id), if(about_order, '', anon_id), session_number,
       report.1, report.2, report.3, fromUnixTimestamp64Milli(report.4, 'UTC') AS at, at,
       {received:DateTime64(3)}, url, '', report.5, device, false, if(about_order, order_id, ''), NULL, '', ''
FROM
(
    SELECT site_id, event_id, session_id, anon_id, session_number, step, url, device, order_id,
           step = 'purchase' AS about_order, cityHash64(event_id) AS h, toUnixTimestamp64Milli(ts) AS t,
           h % 5 = 0 AS late, ['postal', 'ups', 'dhl'][1 + bitShiftRight(h, 3) % 3] AS carrier,
           ['email', 'address', 'postcode', 'phone'] AS fields,
           multiIf(
               step = 'purchase',
               arrayConcat(
                   [('step', 'shipped', '', t + 6 * 3600000 + bitShiftRight(h, 5) % (24 * 3600000),
                     map('carrier', carrier, 'promised_by',
                         formatDateTime(fromUnixTimestamp64Milli(t + 72 * 3600000, 'UTC'), '%Y-%m-%dT%H:%i:%S.000Z')))],
                   if(bitShiftRight(h, 7) % 10 < 6, [('step', 'tracking_viewed', '', t + 40 * 3600000, map())], []),
                   [('step', 'delivered', '', t + if(late, 80, 50) * 3600000 + bitShiftRight(h, 9) % (20 * 3600000),
                     map())],
                   if(bitShiftRight(h, 11) % 100 < 8,
                      [('step', 'returned', '', t + 200 * 3600000,
                        map('reason', ['too_small', 'damaged', 'not_as_described', ''][1 + bitShiftRight(h, 13) % 4]))],
                      []),
                   if(bitShiftRight(h, 15) % 100 < 45,
                      [('track', '', 'feedback', t + 120 * 3600000,
                        map('score', toString(if(late, 4, 8) + bitShiftRight(h, 17) % 3), 'asked_at', 'delivery'))],
                      [])),
               step = 'checkout.info',
               arrayConcat(
                   arrayMap(i -> ('track', step, 'form_field', t + i * 9000,
                                  map('form', 'details', 'field', fields[i], 'ms', toString(3000 + i * 1000 + h % 4000),
                                      'errors', toString(i = 3 AND bitShiftRight(h, 19) % 5 = 0),
                                      'corrections', toString(i = 3 AND bitShiftRight(h, 19) % 5 = 0),
                                      'autofilled', toString(i = 1 AND h % 3 = 0))),
                            range(1, 5)),
                   [('track', step, 'form_report', t + 40000,
                     map('form', 'details', 'outcome', if(bitShiftRight(h, 21) % 3 = 0, 'left', 'submitted'),
                         'attempts', '1', 'last_field', 'phone'))]),
               bitShiftRight(h, 23) % 3 = 0,  -- the payment step: a risk moment for a third
               arrayConcat(
                   [('track', step, 'intervention', t + 5000,
                     map('trigger', ['exit_intent', 'idle', 'return_after_hide'][1 + bitShiftRight(h, 25) % 3],
                         'arm', if(bitShiftRight(h, 27) % 10 = 0, 'holdout', 'treatment')))],
                   if(bitShiftRight(h, 27) % 10 != 0 AND bitShiftRight(h, 29) % 4 = 0,
                      [('track', step, 'intervention_outcome', t + 9000, map('outcome', 'accepted', 'cost', '5'))],
                      [])),
               []) AS reports
    FROM
    (
        SELECT * FROM events  -- each order's first purchase event, each session's first on those steps
        WHERE type IN ('page', 'step') AND step IN ('purchase', 'checkout.info', 'checkout.payment')
            AND startsWith(session_id, 's') AND toUInt64(substring(session_id, 2)) >= {first:UInt64}
        ORDER BY ts
        LIMIT 1 BY session_id, step
    )
)
ARRAY JOIN reports AS report, arrayEnumerate(reports) AS k
WHERE report.4 <= toUnixTimestamp64Milli({received:DateTime64(3)})  -- what has happened by then
"""


def generate(client: Any, *, first: int, count: int, start: dt.datetime, days: int, received: dt.datetime) -> int:
    """`count` sessions from number `first` on, then the reports and answers about their orders
    and the add-ons' records around them."""
    client.command(GENERATE, parameters={"first": first, "count": count, "start": start,
                                         "span_ms": days * 86_400_000 - 3 * 3_600_000, "received": received})
    client.command(AROUND, parameters={"first": first, "received": received})
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


async def asked_during(runner: StoreRunner, work: Callable[[Any], object],
                       ask: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    """How long a call waits behind a rollup: (seconds until `ask()` answered, asked 0.2 s into
    `work` on `runner`'s thread; the seconds `work` took)."""
    started = time.perf_counter()
    working = asyncio.create_task(runner.call(work))
    await asyncio.sleep(0.2)
    asked = time.perf_counter()
    await ask()
    answered = time.perf_counter() - asked
    await working
    return answered, time.perf_counter() - started


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


# The pass no rollup can avoid: every event read once and grouped by session (first and last
# time, count, landing URL, the (time, type, step) of each event), into a table that keeps nothing.
FLOOR = """
INSERT INTO bench_floor
SELECT session_id, min(ts), max(ts), count(), argMin(url, ts), groupArray((ts, type, step))
FROM events WHERE site_id = {site:String}
GROUP BY session_id
SETTINGS optimize_aggregation_in_order = 1
"""


def bare_session_pass(client: Any, settings: Any) -> float:
    client.command("CREATE TABLE IF NOT EXISTS bench_floor (session_id String, started DateTime64(3), "
                   "ended DateTime64(3), events UInt64, landing String, "
                   "steps Array(Tuple(DateTime64(3), String, String))) ENGINE = Null")
    t = time.monotonic()
    client.command(FLOOR, parameters={"site": settings.sites[0].id})
    return time.monotonic() - t


def rss() -> int:
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) * 1024  # type: ignore


def median_ms(client: Any, query: str, settings: Any) -> float:
    times = []
    for _ in range(5):
        t = time.perf_counter()
        client.query(query, parameters=site_parameters(settings.sites[0], query))
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def settle(client: Any, deadline_s: float = 300.0) -> float:
    """Seconds until the store's background merges have ended (the parts a rollup swapped in are
    merged while the first queries run); SystemExit past the deadline."""
    t = time.monotonic()
    while client.query("SELECT count() FROM system.merges").result_rows[0][0]:
        if time.monotonic() - t > deadline_s:
            raise SystemExit(f"merges still running after {deadline_s:.0f} s")
        time.sleep(0.5)
    return time.monotonic() - t


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
    # The floor is timed just before and just after the rollup, and the ratio is to their mean:
    # this shared machine's speed moves within minutes, and both ends bracket the rollup.
    floor_before = bare_session_pass(client, settings)
    baseline_rss = rss()
    with PeakRss() as peak:
        t = time.monotonic()
        full = rollup(client, settings, now=now)[0]
        full_s = time.monotonic() - t
    floor_after = bare_session_pass(client, settings)
    floor_s = (floor_before + floor_after) / 2
    print(f"the floor, one bare session pass over the same events: {floor_before:.2f} s before the rollup, "
          f"{floor_after:.2f} s after, {floor_s:.2f} s their mean")
    rows = {name: client.query(f"SELECT count() FROM {name}").result_rows[0][0] for name in TABLES}
    print(f"full rollup: {full_s:.2f} s for {len(full.days)} days, {full.sessions:,} sessions; "
          f"peak RSS {peak.peak / 2**30:.2f} GiB (before: {baseline_rss / 2**30:.2f} GiB)")
    built = sum(full.table_seconds.values())
    print(f"  {'table':<28} {'seconds':>8} {'share':>6} {'x floor':>8} {'rows':>10}")
    for name, seconds in full.table_seconds.items():
        print(f"  {name:<28} {seconds:8.2f} {seconds / full_s:6.0%} {seconds / floor_s:8.2f} {rows[name]:>10,}")
    print(f"  {'partition swaps and the rest':<28} {full_s - built:8.2f} {(full_s - built) / full_s:6.0%} "
          f"{(full_s - built) / floor_s:8.2f}")
    print(f"  {'full rollup':<28} {full_s:8.2f} {1:6.0%} {full_s / floor_s:8.2f}   (target: at most 12x the floor)")

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
    inc_built = sum(inc.table_seconds.values())
    print("  time per table: " + ", ".join(f"{k} {v:.2f}" for k, v in inc.table_seconds.items()))
    print(f"  finding the days, partition swaps and the rest: {inc_s - inc_built:.2f} s")
    print(f"incremental / full: {inc_s / full_s:.2f} (the new day is {1 / (args.days + 1):.2f} of the history)")

    queries = re.findall(r"```sql\n(.*?)```", (ROOT / "docs" / "queries.md").read_text(), re.S)
    on_rollups = [(i, q) for i, q in enumerate(queries, start=1)
                  if "FROM events" not in q and "events_rejected" not in q]
    just_after = {i: median_ms(client, q, settings) for i, q in on_rollups}
    settled_s = settle(client)
    settled = {i: median_ms(client, q, settings) for i, q in on_rollups}
    print(f"cookbook queries on rollup tables (median of 5): right after the rollup, and once its merges "
          f"ended ({settled_s:.1f} s later)")
    for i, _ in on_rollups:
        print(f"  q{i:<3} {just_after[i]:7.1f} ms {settled[i]:7.1f} ms")
    print(f"  slowest: {max(just_after.values()):.1f} ms right after, {max(settled.values()):.1f} ms settled "
          "(target: at most 50 ms each)")
    print(f"max RSS of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    client.close()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
