"""Early warning: a checkout step that suddenly loses more shoppers, or gets far fewer, at any hour.

After each rollup pass, for each site, checkout step and device ('all' and each
device), the sessions that closed in the last `window_hours` (each of 3, 6 and
24 by default; only whole hours whose sessions have all closed) are compared with
the same step's trailing baseline of `baseline_days`, hour of day by hour of day
in the site's time zone, so a normal evening is not an alert
(docs/metrics.md, "Early warning"):

- **abandonment**: with p(h) the baseline abandonment rate at hour of day h
  (shrunk towards the step's overall rate when an hour has few sessions), the
  window's expected abandonments are E = Σ n(h)·p(h) and the test statistic is
  z = (A − E) / sqrt(Σ n(h)·p(h)(1 − p(h)) + Σ n(h)²·p(h)(1 − p(h)) / m(h)),
  the second term the baseline's own uncertainty (m(h) its sessions). An alert
  needs `min_sample` sessions, z ≥ `z_threshold` and a rise (A − E) / N of at
  least `min_rise`.
- **reach**: the sessions reaching the step against the baseline's average for
  the same hours of day, R; an alert needs R ≥ `min_sample`, at most
  (1 − `min_drop`)·R sessions and a Poisson z ≤ −`z_threshold` (a broken page
  sends nobody on).

Each (step, device, kind, window) is one episode: it is recorded in `alerts`
(state 'open') and sent to the webhook once; when the window is back to normal
(|z| < 1) a resolution (state 'resolved') is recorded and sent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math
import zoneinfo
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
from clickhouse_connect.driver.client import Client

from chainlens.core import clock
from chainlens.core.settings import Site
from ingestion.figures import ALL

log = logging.getLogger(__name__)
SHRINK = 10  # baseline sessions' weight of the step's overall rate in each hour of day
NORMAL_Z = 1.0  # an open episode resolves when the window's |z| is below this
DEVICE_EXTRA_Z = 0.75  # added to z_threshold for a single device's test
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


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
    device: str = ALL
    kind: str = "abandonment"  # abandonment | reach | stall | reach_live (ingestion/live_alerts.py)
    window_hours: int = 0
    state: str = "open"  # open | resolved
    window_minutes: int = 0  # the live kinds': since the episode's change point
    expected: float = 0.0
    observed: int = 0
    cause: str = ""
    causes: list[tuple[str, str, float, float]] = field(default_factory=list)  # (factor, value, share, usual_share)
    since: dt.datetime = EPOCH  # the live kinds': the episode's start


@dataclass(frozen=True)
class Test:
    """One window against its hour-of-day baseline."""

    sessions: int
    abandoned: int
    expected_rate: float
    z: float
    expected_sessions: float
    reach_z: float

    @property
    def rate(self) -> float:
        return self.abandoned / self.sessions if self.sessions else 0.0


def z_score(abandoned_w: int, reached_w: int, abandoned_b: int, reached_b: int) -> float:
    """The pooled two-proportion z statistic (kept for the cookbook's day-level comparisons)."""
    p_w, p_b = abandoned_w / reached_w, abandoned_b / reached_b
    pooled = (abandoned_w + abandoned_b) / (reached_w + reached_b)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / reached_w + 1 / reached_b))
    return 0.0 if spread == 0 else (p_w - p_b) / spread


def window_test(window: dict[int, tuple[int, int]], baseline: dict[int, tuple[int, int]], *,
                window_hours_of_day: list[int], baseline_days: int) -> Test | None:
    """`window` and `baseline`: hour of day → (sessions, abandoned). None without a baseline."""
    m_all = sum(n for n, _ in baseline.values())
    if m_all == 0:
        return None
    p_all = sum(a for _, a in baseline.values()) / m_all
    n_total = a_total = 0
    expected = variance = 0.0
    for hour, (n, a) in window.items():
        m, b = baseline.get(hour, (0, 0))
        p = (b + SHRINK * p_all) / (m + SHRINK)
        n_total, a_total = n_total + n, a_total + a
        expected += n * p
        variance += n * p * (1 - p) + n * n * p * (1 - p) / (m + SHRINK)
    z = 0.0 if variance == 0 else (a_total - expected) / math.sqrt(variance)
    reach_expected = sum(baseline.get(h, (0, 0))[0] for h in window_hours_of_day) / baseline_days
    reach_z = 0.0 if reach_expected == 0 else (n_total - reach_expected) / math.sqrt(reach_expected)
    return Test(n_total, a_total, expected / n_total if n_total else p_all, z, reach_expected, reach_z)


def evaluate(client: Client, site: Site, *, now: dt.datetime | None = None, timeout_s: int = 1800) -> list[Alert]:
    """Find, record and return the alerts and resolutions of `site` at `now` (new ones only)."""
    cfg = site.alerts
    tz = zoneinfo.ZoneInfo(site.timezone)
    detected_at = now or clock.now()
    # Only whole hours whose sessions have all closed (the last one ended timeout_s ago).
    end = (detected_at - dt.timedelta(seconds=timeout_s)).replace(minute=0, second=0, microsecond=0)
    longest = max(cfg.window_hours)
    start = end - dt.timedelta(hours=longest) - dt.timedelta(days=cfg.baseline_days)
    rows = client.query(
        "SELECT hour, step, device, sum(reached), sum(abandoned) FROM checkout_hourly "
        "WHERE site_id = {site:String} AND hour >= {start:DateTime} AND hour < {end:DateTime} "
        "GROUP BY hour, step, device",
        parameters={"site": site.id, "start": start.replace(tzinfo=None), "end": end.replace(tzinfo=None)},
    ).result_rows
    series: dict[tuple[str, str], list[tuple[dt.datetime, int, int]]] = defaultdict(list)
    for hour, step, device, n, a in rows:
        series[(step, device)].append((hour.replace(tzinfo=dt.UTC), int(n), int(a)))
    episodes = _open_episodes(client, site)
    found: list[Alert] = []
    for hours in cfg.window_hours:
        w_start = end - dt.timedelta(hours=hours)
        b_start = w_start - dt.timedelta(days=cfg.baseline_days)
        hours_of_day = [(w_start + dt.timedelta(hours=i)).astimezone(tz).hour for i in range(hours)]
        for (step, device), points in sorted(series.items()):
            window: dict[int, tuple[int, int]] = defaultdict(lambda: (0, 0))
            baseline: dict[int, tuple[int, int]] = defaultdict(lambda: (0, 0))
            for hour, n, a in points:
                target = window if hour >= w_start else baseline if hour >= b_start else None
                if target is not None:
                    h = hour.astimezone(tz).hour
                    target[h] = (target[h][0] + n, target[h][1] + a)
            test = window_test(dict(window), dict(baseline), window_hours_of_day=hours_of_day,
                               baseline_days=cfg.baseline_days)
            if test is None or sum(n for n, _ in baseline.values()) < cfg.min_sample:
                continue
            span = (w_start.date(), end.date())
            for kind in ("abandonment", "reach"):
                key = (step, device, kind, hours)
                firing = _fires(kind, test, cfg, device)
                normal = abs(test.z if kind == "abandonment" else test.reach_z) < NORMAL_Z
                if firing and key not in episodes:
                    found.append(_alert(site, detected_at, step, device, kind, hours, span, test, "open"))
                elif key in episodes and normal and not firing:
                    found.append(_alert(site, detected_at, step, device, kind, hours, span, test, "resolved"))
    record(client, site, found)
    return found


def record(client: Client, site: Site, found: list[Alert]) -> None:
    """Store new alerts and resolutions in `alerts`, and log each."""
    if not found:
        return
    client.insert("alerts", [list(asdict(a).values()) for a in found], column_names=list(Alert.__annotations__))
    for alert in found:
        log.warning("early warning", extra={"site": site.id, "step": alert.step, "device": alert.device,
                                            "kind": alert.kind, "state": alert.state, "alert": alert.message})


def _fires(kind: str, test: Test, cfg: Any, device: str) -> bool:
    # Each device is one more test of the same step, on fewer sessions: it must clear a higher bar.
    threshold = cfg.z_threshold + (0 if device == ALL else DEVICE_EXTRA_Z)
    if kind == "abandonment":
        return (test.sessions >= cfg.min_sample and test.z >= threshold
                and test.rate - test.expected_rate >= cfg.min_rise)
    return (test.expected_sessions >= cfg.min_sample and test.reach_z <= -threshold
            and test.sessions <= (1 - cfg.min_drop) * test.expected_sessions)


def _alert(site: Site, at: dt.datetime, step: str, device: str, kind: str, hours: int,
           span: tuple[dt.date, dt.date], test: Test, state: str) -> Alert:
    who = "" if device == ALL else f" on {device}"
    if kind == "abandonment":
        what = (f"abandonment at {step}{who} rose to {test.rate:.1%} in the last {hours} h from an expected "
                f"{test.expected_rate:.1%} (z = {test.z:.1f}, {test.sessions} sessions)")
        if state == "resolved":
            what = f"abandonment at {step}{who} is back to normal: {test.rate:.1%} in the last {hours} h"
        z = test.z
    else:
        what = (f"sessions reaching {step}{who} fell to {test.sessions} in the last {hours} h from about "
                f"{test.expected_sessions:.0f} expected (z = {test.reach_z:.1f})")
        if state == "resolved":
            what = f"sessions reaching {step}{who} are back to normal: {test.sessions} in the last {hours} h"
        z = test.reach_z
    return Alert(site.id, at, step, span[0], span[1], test.expected_rate, test.rate, test.sessions, z,
                 f"{site.id}: {what}", device, kind, hours, state)


def _open_episodes(client: Client, site: Site) -> set[tuple[str, str, str, int]]:
    """(step, device, kind, window hours) whose latest record is an opening."""
    rows = client.query(
        "SELECT step, device, kind, window_hours, argMax(state, detected_at) FROM alerts "
        "WHERE site_id = {site:String} AND window_hours > 0 GROUP BY step, device, kind, window_hours",
        parameters={"site": site.id}).result_rows
    return {(r[0], r[1], r[2], int(r[3])) for r in rows if r[4] == "open"}


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
    out["since"] = alert.since.isoformat()
    out["causes"] = [{"factor": f, "value": v, "share": s, "usual_share": u} for f, v, s, u in alert.causes]
    return out


def list_alerts_query(*, site: str | None, limit: int) -> tuple[str, dict[str, Any]]:
    query = (
        "SELECT toStartOfSecond(detected_at) AS detected, kind, state, device, step, round(z, 1) AS z, message "
        "FROM alerts FINAL "
        + ("WHERE site_id = {site:String} " if site else "")
        + "ORDER BY detected_at DESC, step LIMIT {limit:UInt32}"
    )
    return query, {"site": site, "limit": limit} if site else {"limit": limit}
