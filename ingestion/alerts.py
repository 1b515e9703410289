"""Early warning: a checkout step whose abandonment rate suddenly rises.

After each rollup, for each checkout step of a site, the latest window
(`[sites.alerts] window_days`, ending on the latest rolled-up day) is compared
with the trailing baseline before it (`baseline_days`) by a one-sided
two-proportion z-test on abandoned / reached:

    z = (p_window - p_baseline) / sqrt(p (1 - p) (1/n_window + 1/n_baseline)),  p pooled

An alert needs at least `min_sample` sessions reaching the step in both, z at or
above `z_threshold` and a rise of at least `min_rise`. It is written to `alerts`
once per (site, step, window) and, when `webhook` is set, POSTed as JSON.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
from dataclasses import asdict, dataclass
from typing import Any

import aiohttp
from clickhouse_connect.driver.client import Client

from chainlens.core.settings import Site
from ingestion.figures import ALL

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    site_id: str
    detected_at: dt.datetime
    step: str
    window_start: dt.date
    window_end: dt.date
    baseline_rate: float
    current_rate: float
    reached: int
    z: float
    message: str


def z_score(abandoned_w: int, reached_w: int, abandoned_b: int, reached_b: int) -> float:
    p_w, p_b = abandoned_w / reached_w, abandoned_b / reached_b
    pooled = (abandoned_w + abandoned_b) / (reached_w + reached_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / reached_w + 1 / reached_b))
    return 0.0 if spread == 0 else (p_w - p_b) / spread


def evaluate(client: Client, site: Site, *, now: dt.datetime | None = None) -> list[Alert]:
    """Find and record new alerts for `site`; returns those not recorded before."""
    cfg = site.alerts
    latest = client.query(
        "SELECT max(day) FROM checkout_abandonment_daily WHERE site_id = {site:String}",
        parameters={"site": site.id}).result_rows[0][0]
    if latest is None or latest.year < 1971:
        return []
    window_start = latest - dt.timedelta(days=cfg.window_days - 1)
    baseline_start = window_start - dt.timedelta(days=cfg.baseline_days)
    rows = client.query("""
        SELECT step, day >= {window_start:Date} AS in_window, sum(reached), sum(abandoned)
        FROM checkout_abandonment_daily
        WHERE site_id = {site:String} AND device = {all:String} AND visitor = {all:String}
          AND day BETWEEN {baseline_start:Date} AND {latest:Date}
        GROUP BY step, in_window""",
        parameters={"site": site.id, "window_start": window_start, "baseline_start": baseline_start,
                    "latest": latest, "all": ALL}).result_rows
    counts: dict[tuple[str, bool], tuple[int, int]] = {(r[0], bool(r[1])): (int(r[2]), int(r[3])) for r in rows}
    known = {r[0] for r in client.query(
        "SELECT step FROM alerts FINAL WHERE site_id = {site:String} AND window_start = {ws:Date} "
        "AND window_end = {we:Date}", parameters={"site": site.id, "ws": window_start, "we": latest}).result_rows}
    detected_at = now or dt.datetime.now(dt.UTC)
    found = []
    for step in site.checkout_steps:
        (n_w, a_w), (n_b, a_b) = counts.get((step, True), (0, 0)), counts.get((step, False), (0, 0))
        if n_w < cfg.min_sample or n_b < cfg.min_sample or step in known:
            continue
        z = z_score(a_w, n_w, a_b, n_b)
        rate_w, rate_b = a_w / n_w, a_b / n_b
        if z < cfg.z_threshold or rate_w - rate_b < cfg.min_rise:
            continue
        span = f"{window_start}" if window_start == latest else f"{window_start}..{latest}"
        before = window_start - dt.timedelta(days=1)
        message = (f"{site.id}: abandonment at {step} rose to {rate_w:.1%} on {span} "
                   f"from {rate_b:.1%} over {baseline_start}..{before} (z = {z:.1f}, {n_w} sessions)")
        found.append(Alert(site.id, detected_at, step, window_start, latest, rate_b, rate_w, n_w, z, message))
    if found:
        client.insert("alerts", [list(asdict(a).values()) for a in found], column_names=list(Alert.__annotations__))
        for alert in found:
            log.warning("early warning", extra={"site": site.id, "step": alert.step, "z": round(alert.z, 2),
                                                "alert": alert.message})
    return found


async def deliver(alerts: list[Alert], webhook: str, *, attempts: int = 4, timeout_s: float = 5.0) -> bool:
    """POST the alerts as JSON to the site's webhook, retrying with backoff; True when delivered."""
    if not alerts or not webhook:
        return True
    payload = {"alerts": [_jsonable(a) for a in alerts]}
    delay = 0.5
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session:
        for attempt in range(1, attempts + 1):
            try:
                async with session.post(webhook, json=payload) as resp:
                    if resp.status < 300:
                        return True
                    error = f"HTTP {resp.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = str(exc) or type(exc).__name__
            log.warning("alert webhook failed", extra={"attempt": attempt, "error": error})
            if attempt < attempts:
                await asyncio.sleep(delay)
                delay *= 2
    return False


def _jsonable(alert: Alert) -> dict[str, Any]:
    out = asdict(alert)
    out["detected_at"] = alert.detected_at.isoformat()
    out["window_start"], out["window_end"] = alert.window_start.isoformat(), alert.window_end.isoformat()
    return out


def list_alerts_query(*, site: str | None, limit: int) -> tuple[str, dict[str, Any]]:
    query = (
        "SELECT toStartOfSecond(detected_at) AS detected, step, round(z, 1) AS z, message FROM alerts FINAL "
        + ("WHERE site_id = {site:String} " if site else "")
        + "ORDER BY detected_at DESC, step LIMIT {limit:UInt32}"
    )
    return query, {"site": site, "limit": limit} if site else {"limit": limit}
