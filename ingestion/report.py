"""The figures behind the dashboard, for one site and a range of days.

Counts are sums of the daily rollup tables. Quantiles cannot be summed, so
over a range they are computed from `chain_sessions` with the same definitions
(exact, interpolated); for a single day they equal the daily tables' figures.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from clickhouse_connect.driver.client import Client

from chainlens.settings import Site

# SQL over chain_sessions for figures that cannot be summed across days (DESIGN,
# "Step timing" and median_ms_before_abandon), shared with the demo's printout.
TRANSITIONS = """arrayMap(i -> (steps[i], steps[i + 1],
    toFloat64(toUnixTimestamp64Milli(entered[i + 1]) - toUnixTimestamp64Milli(entered[i]))),
    range(1, length(steps)))"""
BEFORE_LEAVING_MS = """toFloat64(toUnixTimestamp64Milli(ended_at)
    - toUnixTimestamp64Milli(entered[indexOf(steps, abandoned_at)]))"""


def _rows(client: Client, query: str, **params: Any) -> list[dict[str, Any]]:
    result = client.query(query, parameters=params)
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def days_available(client: Client, site: Site) -> tuple[dt.date | None, dt.date | None]:
    row = client.query("SELECT minOrNull(day), maxOrNull(day) FROM chain_daily WHERE site_id = {site:String}",
                       parameters={"site": site.id}).result_rows[0]
    return row[0], row[1]


def report(client: Client, site: Site, *, start: dt.date, end: dt.date) -> dict[str, Any]:
    p = {"site": site.id, "start": start, "end": end, "chain": list(site.chain)}
    scope = "site_id = {site:String} AND day BETWEEN {start:Date} AND {end:Date}"
    whole = scope + " AND device = 'all' AND visitor = 'all'"
    funnel = _rows(client, f"""
        SELECT step, step_index, sum(sessions_reached) AS reached, sum(sessions_purchased) AS purchased
        FROM chain_daily WHERE {whole} GROUP BY step, step_index ORDER BY step_index""", **p)
    checkout = _rows(client, f"""
        SELECT step, step_index, sum(reached) AS reached, sum(continued) AS continued,
               sum(abandoned) AS abandoned, abandoned / reached AS abandonment_rate
        FROM checkout_abandonment_daily WHERE {whole} GROUP BY step, step_index ORDER BY step_index""", **p)
    before = {r["step"]: r["median_ms"] for r in _rows(client, f"""
        SELECT abandoned_at AS step, quantileExactInclusive(0.5)({BEFORE_LEAVING_MS}) AS median_ms
        FROM chain_sessions WHERE {scope} AND abandoned_at != '' GROUP BY abandoned_at""", **p)}
    for row in checkout:
        row["median_ms_before_abandon"] = before.get(row["step"])
    timing = _rows(client, f"""
        SELECT t.1 AS step, t.2 AS next_step, count() AS transitions,
               quantilesExactInclusive(0.5, 0.9)(t.3) AS q, q[1] AS p50_ms, q[2] AS p90_ms
        FROM chain_sessions
        ARRAY JOIN {TRANSITIONS} AS t
        WHERE {scope}
        GROUP BY step, next_step
        ORDER BY indexOf({{chain:Array(String)}}, step), transitions DESC""", **p)
    obstacles = _rows(client, f"""
        SELECT step, kind, sum(sessions_with) AS sessions_with, sum(abandoned_with) / sessions_with AS rate_with,
               sum(sessions_without) AS without, if(without = 0, NULL, sum(abandoned_without) / without)
                   AS rate_without,
               if(rate_without = 0, NULL, rate_with / rate_without) AS lift
        FROM obstacle_impact_daily WHERE {scope}
        GROUP BY step, kind ORDER BY lift DESC NULLS LAST, sessions_with DESC""", **p)
    fast = _rows(client, f"""
        SELECT sum(detail_views) AS detail_views, sum(fast_track_views) AS fast_track_views,
               if(detail_views = 0, NULL, fast_track_views / detail_views) AS rate
        FROM fast_track_daily WHERE {scope}""", **p)[0]
    alerts = _rows(client, """
        SELECT detected_at, step, window_start, window_end, baseline_rate, current_rate, reached, z, message
        FROM alerts FINAL WHERE site_id = {site:String} ORDER BY detected_at DESC, step LIMIT 10""", site=site.id)
    cart = next((r for r in funnel if r["step"] == site.checkout_from), None)
    return {
        "site": site.id, "start": start.isoformat(), "end": end.isoformat(), "funnel": funnel,
        "checkout": checkout, "timing": timing, "obstacles": obstacles, "fast_track": fast, "alerts": alerts,
        "cart_abandonment": (1 - cart["purchased"] / cart["reached"]) if cart and cart["reached"] else None,
    }
