"""The dashboard's server time and page weight over a week of 10 million events.

    .venv/bin/python bench/dashboard.py [--sessions 1540000] [--runs 5]

The events are bench/rollup.py's (1.54 million sessions over 7 days, about 10
million events), generated into an embedded store and rolled up. Then, for the
last 7 days and the whole site, the median of `--runs`:
- the figures: `report_range`, every query the page reads (the store side's work), on the
  store process's READERS connections at once (ingestion/runner.py), and on one;
- the page: those figures rendered by the dashboard's template (the accept side's work);
and the page's weight: its HTML, and the chart library it loads, raw and gzipped.
Then the same view through the dashboard's cache (ingestion/report.py, `ReportCache`), as
it is after a scheduled rollup computed it: the store's version check and a hit.
The target for the server time (figures plus page) is 300 ms. The slowest figures are
listed with their own time, summed over the page's calls (the median run's). Last, the
view asked 0.2 s into a rollup of its last day, as a scheduled pass would run it: on the
store's thread (where it waited before) and on the dashboard's reads beside it, in turn.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import gzip
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rollup import asked_during, rolled_up_week  # noqa: E402  (bench/rollup.py)

from collector import dashboard  # noqa: E402
from ingestion import figures as figures_module  # noqa: E402
from ingestion import report, store  # noqa: E402
from ingestion.report import report_range  # noqa: E402
from ingestion.rollup import rollup  # noqa: E402
from ingestion.runner import READERS, StoreRunner  # noqa: E402
from ingestion.service import StoreService  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=1_540_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--keep", type=Path, help="keep the rolled-up store here, and reuse it when it is there")
    args = parser.parse_args()
    week = rolled_up_week(args.sessions, args.keep, "chainlens-dashboard-bench-")
    client, site, work = week.client, week.settings.sites[0], week.work
    readers = [client, *(store.connect(week.settings.store.dsn) for _ in range(READERS - 1))]
    template = dashboard._env().get_template("dashboard.html")
    figures, alone, pages, html = [], [], [], ""
    spent: list[dict[str, float]] = []
    rows, recording = figures_module.rows, [True]

    def timed(client: object, name: str, params: dict) -> list:
        t = time.perf_counter()
        try:
            return rows(client, name, params)  # type: ignore[arg-type]
        finally:
            if recording:
                spent[-1][name] = spent[-1].get(name, 0.0) + time.perf_counter() - t

    figures_module.rows = timed  # type: ignore[assignment]
    for _ in range(args.runs):  # the two ways in turn, so that each run sees the machine as the other does
        spent.append({})
        recording[:] = [True]
        t = time.perf_counter()
        report_range(client, site, None, None)
        alone.append(time.perf_counter() - t)
        recording.clear()
        t = time.perf_counter()
        data = report_range(readers, site, None, None)
        figures.append(time.perf_counter() - t)
        t = time.perf_counter()
        html = template.render(data=data, live=None, charts=dashboard.charts(data),
                               charts_installed=dashboard.charts_installed(), sites=[site.id], token="")
        pages.append(time.perf_counter() - t)
    figures_module.rows = rows  # type: ignore[assignment]
    cache, cached = report.ReportCache(), []
    cache.report(readers, site, None, None, None, None, None)  # as the pass after a rollup leaves it
    for _ in range(args.runs):
        t = time.perf_counter()
        cache.report(readers, site, None, None, None, None, None)
        cached.append(time.perf_counter() - t)
    assert cache.hits == args.runs, "the cache should answer every run after the first"
    f, p = statistics.median(figures) * 1000, statistics.median(pages) * 1000
    c, one = statistics.median(cached) * 1000, statistics.median(alone) * 1000
    print(f"\nserver time, median of {args.runs} ({data['start']} to {data['end']}, all devices):")
    print(f"  figures (report_range)   {f:7.0f} ms   ({READERS} connections, as the store process runs them;"
          f" one connection: {one:.0f} ms)")
    print(f"  page (template)          {p:7.0f} ms")
    print(f"  total                    {f + p:7.0f} ms   (target 300 ms)")
    print(f"  the same view again, or after a rollup's warm-up (figures from the cache, version check):"
          f" {c:.1f} ms + page {p:.0f} ms")
    median_run = spent[alone.index(sorted(alone)[len(alone) // 2])]
    print("  slowest figures, one connection:", ", ".join(f"{n} {v * 1000:.0f} ms" for n, v in
                                                       sorted(median_run.items(), key=lambda kv: -kv[1])))
    print("\npage weight:")
    body = html.encode()
    print(f"  HTML                     {len(body):>9,} B, {len(gzip.compress(body)):>8,} B gzipped")
    for name in dashboard.ASSETS:
        asset = dashboard._asset(name)
        if asset is None:
            print(f"  {name:24} not installed (make installs it)")
        else:
            print(f"  {name:24} {len(asset):>9,} B, {len(gzip.compress(asset)):>8,} B gzipped (cached a day)")
    for reader in readers[1:]:
        reader.close()
    asyncio.run(during_rollup(week, dt.date.fromisoformat(data["end"]), args.runs))
    client.close()
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


async def during_rollup(week: Any, day: dt.date, runs: int) -> None:
    """The view (figures, not from the cache) asked 0.2 s into a rollup of `day`."""
    runner = StoreRunner(week.settings.store.dsn, client=week.client)
    service = StoreService(week.settings, runner)
    site = week.settings.sites[0]

    async def on_the_stores_thread() -> object:
        return await runner.call(lambda c: report_range(runner.readers(), site, None, None))

    async def beside() -> object:
        service.reports = report.ReportCache()
        return await service.report({"site": site.id})

    ways = {"on the store's thread": on_the_stores_thread, "beside it (the reads' thread)": beside}
    answered: dict[str, list[float]] = {name: [] for name in ways}
    rolled: list[float] = []
    for _ in range(max(1, runs // 2)):
        for name, ask in ways.items():
            waited, took = await asked_during(
                runner, lambda c: rollup(c, week.settings, now=week.now, since=day, until=day), ask)
            answered[name].append(waited)
            rolled.append(took)
    print(f"\nthe view asked 0.2 s into a rollup of {day} (rollup {min(rolled):.1f}–{max(rolled):.1f} s),"
          " answered after:")
    for name, times in answered.items():
        print(f"  {name:30} " + ", ".join(f"{t * 1000:,.0f} ms" for t in times))
    await service.reads.close()
    await runner.close()


if __name__ == "__main__":
    main()
