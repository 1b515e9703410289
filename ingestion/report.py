"""The figures behind the dashboard, for one site and a range of days (queries in ingestion/figures.py)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from clickhouse_connect.driver.client import Client

from chainlens.core.settings import Site
from ingestion.figures import parameters, rows


def days_available(client: Client, site: Site) -> tuple[dt.date | None, dt.date | None]:
    row = client.query("SELECT minOrNull(day), maxOrNull(day) FROM chain_daily WHERE site_id = {site:String}",
                       parameters={"site": site.id}).result_rows[0]
    return row[0], row[1]


def report(client: Client, site: Site, *, start: dt.date, end: dt.date) -> dict[str, Any]:
    p = parameters(site, start=start, end=end)
    return {
        "site": site.id, "start": start.isoformat(), "end": end.isoformat(), "funnel": rows(client, "funnel", p),
        "checkout": rows(client, "checkout", p), "timing": rows(client, "timing", p),
        "obstacles": rows(client, "obstacles", p), "fast_track": rows(client, "fast_track", p)[0],
        "alerts": rows(client, "alerts", p), "cart_abandonment": rows(client, "cart", p)[0]["cart_abandonment"],
    }
