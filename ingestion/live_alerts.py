"""Live early warning: shoppers at a checkout step who stop moving on, or a step nobody reaches,
judged every `live_every_s` on sessions still open (docs/metrics.md, "Live early warning").

For each checkout step and device ('all' and each device):

- **stall**: every session that entered the step in the last `LOOKBACK` minutes is one
  observation a minute while it waits there. Under the baseline, a session that has waited `e`
  minutes moves on within the next minute with the hazard h = (q(e+1) − q(e)) / (1 − q(e)),
  where q(e) is the share of the step's sessions that had moved on `e` minutes after entering,
  by hour of day (`step_moves_hourly`, over `baseline_days`). A risk-adjusted CUSUM of the
  log-likelihood ratio of "the hazard is ρ times the baseline's" (Steiner et al. 2000), run
  for ρ = 0.02 (a broken step) and ρ = 0.5 (a step losing many more), fires at `THRESHOLD`.
- **reach_live**: the entries a minute against the hour of day's average, a Poisson CUSUM
  for a rate a quarter of the usual one (a broken previous page sends nobody on).

Each pass recomputes the statistics minute by minute over the last `LOOKBACK` minutes from
zero, so a restart loses nothing and every pass is a function of the events and `now` alone.
When a stall opens, its likely cause comes from ingestion/live_causes.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from clickhouse_connect.driver.client import Client

from chainlens.core.settings import Site
from ingestion.alerts import Alert, record
from ingestion.live_causes import Cause, describe, naive, rank_causes
from ingestion.tables import ALL

log = logging.getLogger(__name__)
LOOKBACK = 120  # minutes of entries judged at each pass (step_moves_hourly keeps 120 minutes of delays)
SHRINK = 20  # baseline entries' weight of the step's all-hours curve in each hour of day
THRESHOLD = 11.5  # the CUSUM's alarm level (bench/live_alerts.py: at most one chance alarm a site-month)
DEVICE_EXTRA = 1.5  # added for a single device's chart: one more test, on fewer sessions
REACH_EXTRA = 2.0  # added for the reach chart: a day's rhythm within an hour is not flat
RESOLVED_BELOW = 1.0  # an open episode resolves when its statistic falls below this,
RECOVERY_MINUTES = 20  # or when the last minutes look normal again: of the sessions that entered
RECOVERY_SHARE = 0.8  # then, at least this share of the expected moved on (or arrived), and 3 at least
STALL_RATIOS = (0.02, 0.5)
REACH_RATIO = 0.25
BASELINE_EVERY = 10  # minutes a pass reuses a site's baseline
LIVE_KINDS = ("stall", "reach_live")

BASELINE = """
SELECT step, device, toHour(hour, {tz:String}) AS h, sum(entered), sumForEach(moved_within),
       min(hour), max(hour)
FROM step_moves_hourly
WHERE site_id = {site:String} AND hour >= {lo:DateTime} AND hour < {hi:DateTime}
GROUP BY step, device, h
"""

# Each session's first entry at each chain step in the scanned range (docs/metrics.md, "Sessions").
ENTRIES = """
SELECT session_id, argMin(device, ts) AS device,
       minMapIf([step], [toUnixTimestamp64Milli(ts)], step IN {chain:Array(String)}) AS first_entry
FROM events
WHERE site_id = {site:String} AND NOT is_bot AND source != 'import' AND NOT startsWith(session_id, 'order:')
    AND ts >= {lo:DateTime64(3)} AND ts <= {now:DateTime64(3)}
GROUP BY session_id
HAVING hasAny(first_entry.1, {steps:Array(String)})
"""

@dataclass
class Curve:
    """One step and device's baseline: entries and moved-on shares by hour of day (site time)."""

    entered: np.ndarray  # [24] entries over the baseline
    q: np.ndarray  # [24, LOOKBACK + 1]: share moved on within 0, 1, … minutes
    days: float  # the baseline's length, for entries per hour

    @property
    def sessions(self) -> int:
        return int(self.entered.sum())


@dataclass
class Chart:
    """The statistics of one step and device at `now`."""

    stall: float = 0.0
    stall_since: int = LOOKBACK  # minutes before now at which the stall statistic last was 0
    reach: float = 0.0
    reach_since: int = LOOKBACK
    entered: int = 0  # entries since the stall's change point, and how many moved on, and expected
    moved: int = 0
    expected_moved: float = 0.0
    arrivals: int = 0  # entries since the reach statistic's change point, and expected
    expected_arrivals: float = 0.0
    stalled_ids: list[str] = field(default_factory=list)
    stall_recovered: bool = False  # the last RECOVERY_MINUTES look normal again
    reach_recovered: bool = False
    stall_path: np.ndarray | None = None  # the statistics at each of the last LOOKBACK minutes
    entries: list[float] = field(default_factory=list)  # per session: entry (minutes since now − LOOKBACK),
    moved_on: list[bool] = field(default_factory=list)  # whether it moved on, and its q by now
    expected_by_now: list[float] = field(default_factory=list)
    reach_path: np.ndarray | None = None


def baseline(client: Client, site: Site, now: dt.datetime) -> dict[tuple[str, str], Curve]:
    hi = (now - dt.timedelta(minutes=LOOKBACK)).replace(minute=0, second=0, microsecond=0)
    lo = hi - dt.timedelta(days=site.alerts.baseline_days)
    rows = client.query(BASELINE, parameters={"site": site.id, "tz": site.timezone, "lo": naive(lo),
                                               "hi": naive(hi)}).result_rows
    entered: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros(24))
    moved: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros((24, LOOKBACK + 1)))
    first, last = hi, lo
    for step, device, hour, n, within, h_min, h_max in rows:
        entered[(step, device)][hour] = n
        moved[(step, device)][hour, 1:] = within
        first, last = min(first, h_min.replace(tzinfo=dt.UTC)), max(last, h_max.replace(tzinfo=dt.UTC))
    days = max(1.0, ((last - first).total_seconds() + 3600) / 86400) if rows else 1.0
    curves = {}
    for key, n in entered.items():
        overall = moved[key].sum(axis=0) / max(1.0, n.sum())  # the all-hours curve
        q = (moved[key] + SHRINK * overall) / (n[:, None] + SHRINK)
        curves[key] = Curve(n, np.minimum(np.maximum.accumulate(q, axis=1), 0.999), days)
    return curves


def judge(curve: Curve, entries: np.ndarray, moves: np.ndarray, hours: np.ndarray, arrival_hours: np.ndarray,
          ids: list[str], *, stall_from: int = 0, reach_from: int = 0) -> Chart:
    """The charts at now from each session's entry and move, in minutes since now − LOOKBACK
    (moves: inf when none yet), the hour of day of each entry, and that of each minute. Each
    statistic starts at zero at its `_from` minute: where an episode of it last resolved.

    Minute m covers (m, m + 1]; a session waits in it when it entered before m + 1 and had not
    moved on by m. Only those (session, minute) cells are computed."""
    chart = Chart()
    n = len(entries)
    first = np.floor(entries).astype(int)
    last = np.where(np.isfinite(moves), np.ceil(np.minimum(moves, LOOKBACK)) - 1, LOOKBACK - 1).astype(int)
    counts = np.clip(last - first + 1, 0, None)
    cell_session = np.repeat(np.arange(n), counts)
    offsets = np.repeat(np.cumsum(counts) - counts, counts)
    minute = first[cell_session] + np.arange(len(cell_session)) - offsets
    x = entries[cell_session]
    curves = curve.q[hours[cell_session]]
    q0, q1 = _at(curves, np.clip(minute - x, 0, None)), _at(curves, minute + 1 - x)
    hazard = np.clip((q1 - q0) / (1 - q0), 0, 0.999)
    moved_now = moves[cell_session] <= minute + 1
    stall = np.zeros(LOOKBACK)
    for ratio in STALL_RATIOS:
        llr = np.where(moved_now, math.log(ratio), np.log1p(-ratio * hazard) - np.log1p(-hazard))
        increments = np.bincount(minute, weights=llr, minlength=LOOKBACK)
        increments[:stall_from] = 0
        stall = np.maximum(stall, _cusum(increments))
    chart.stall, chart.stall_since, chart.stall_path = float(stall[-1]), _since(stall), stall
    recent = entries >= LOOKBACK - chart.stall_since
    chart.entered, chart.moved = int(recent.sum()), int((recent & np.isfinite(moves)).sum())
    by_now = _at(curve.q[hours], LOOKBACK - entries) if n else np.zeros(0)
    chart.expected_moved = float(by_now[recent].sum())
    chart.entries, chart.moved_on = entries.tolist(), np.isfinite(moves).tolist()
    chart.expected_by_now = by_now.tolist()
    chart.stalled_ids = [i for i, r, m in zip(ids, recent, moves, strict=True) if r and not np.isfinite(m)]
    latest = entries >= LOOKBACK - RECOVERY_MINUTES
    latest_moved = int((latest & np.isfinite(moves)).sum())
    chart.stall_recovered = latest_moved >= 3 and latest_moved >= RECOVERY_SHARE * float(by_now[latest].sum())
    # The reach statistic: entries a minute against the hour of day's average.
    arrived = np.bincount(np.minimum(first, LOOKBACK - 1), minlength=LOOKBACK) if n else np.zeros(LOOKBACK)
    rate = curve.entered[arrival_hours] / curve.days / 60
    increments = arrived * math.log(REACH_RATIO) + rate * (1 - REACH_RATIO)
    increments[:reach_from] = 0
    reach = _cusum(increments)
    chart.reach, chart.reach_since, chart.reach_path = float(reach[-1]), _since(reach), reach
    chart.arrivals = int(arrived[LOOKBACK - chart.reach_since:].sum())
    chart.expected_arrivals = float(rate[LOOKBACK - chart.reach_since:].sum())
    latest_arrivals = int(arrived[-RECOVERY_MINUTES:].sum())
    chart.reach_recovered = latest_arrivals >= 3 and latest_arrivals >= RECOVERY_SHARE * rate[-RECOVERY_MINUTES:].sum()
    return chart


def _at(q: np.ndarray, elapsed: np.ndarray) -> np.ndarray:
    """Each row of q (a curve per cell) at that cell's `elapsed` minutes, interpolated."""
    e = np.clip(elapsed, 0, LOOKBACK)
    lo = np.minimum(np.floor(e).astype(int), LOOKBACK - 1)
    rows = np.arange(len(e))
    left, right = q[rows, lo], q[rows, lo + 1]
    return left + (e - lo) * (right - left)


def _cusum(increments: np.ndarray) -> np.ndarray:
    """The one-sided CUSUM path: s = max(0, s + w) at each minute, from 0. Over Python floats
    (a third of the time of numpy scalars, the same bits)."""
    path, s = [], 0.0
    for w in increments.tolist():
        s = s + w if s + w > 0.0 else 0.0
        path.append(s)
    return np.array(path)


def _since(path: np.ndarray) -> int:
    """Minutes before now since the statistic last was zero (the change point's estimate)."""
    zeros = np.flatnonzero(path == 0)
    return int(len(path) - 1 - zeros[-1]) if len(zeros) else len(path)


Entry = tuple[str, str, tuple[list[str], list[int]]]  # session, device, (steps, first entry ms)


def entries(client: Client, site: Site, now: dt.datetime, *, timeout_s: int) -> list[Entry]:
    """The sessions of the last LOOKBACK minutes (and a session timeout before, so a session's
    first entry is its first) that entered a checkout step: one query over recent events."""
    lo = now - dt.timedelta(minutes=LOOKBACK, seconds=timeout_s)
    rows = client.query(ENTRIES, parameters={
        "site": site.id, "chain": list(site.chain), "steps": list(site.checkout_steps), "now": naive(now),
        "lo": naive(lo)}).result_rows
    return [(r[0], r[1], r[2]) for r in rows]


def charts(site: Site, now: dt.datetime, curves: dict[tuple[str, str], Curve], rows: list[Entry],
           resolved: dict[tuple[str, str, str], float] | None = None) -> dict[tuple[str, str], Chart]:
    """Every monitored step and device's charts at `now`, from the sessions' entries. A chart
    whose (step, device, kind) episode resolved `resolved[key]` minutes ago starts again from
    zero then: a new episode needs evidence gathered after the last one ended."""
    resolved = resolved or {}

    def restart(step: str, device: str, kind: str) -> int:
        return max(0, LOOKBACK - math.floor(resolved.get((step, device, kind), LOOKBACK)))

    start = now - dt.timedelta(minutes=LOOKBACK)
    steps = site.checkout_steps
    tz = zoneinfo.ZoneInfo(site.timezone)
    start_ms = start.timestamp() * 1000
    arrival_hours = np.array([(start + dt.timedelta(minutes=m)).astimezone(tz).hour for m in range(LOOKBACK)])
    order = {s: i for i, s in enumerate(site.chain)}
    per: dict[tuple[str, str], list[tuple[str, float, float, int]]] = defaultdict(list)
    for session_id, device, (names, times) in rows:
        entered = dict(zip(names, times, strict=True))
        for step in steps:
            at = entered.get(step)
            if at is None or at < start_ms:
                continue
            later = [t for s, t in entered.items() if order[s] > order[step] and t >= at]
            move = (min(later) - start_ms) / 60000 if later else math.inf
            hour = dt.datetime.fromtimestamp(at / 1000, tz).hour
            row = (session_id, (at - start_ms) / 60000, move, hour)
            per[(step, ALL)].append(row)
            per[(step, device)].append(row)
    out = {}
    for key, curve in curves.items():
        if key[0] not in steps:
            continue
        sessions = per.get(key, [])
        out[key] = judge(curve, np.array([s[1] for s in sessions], dtype=float),
                         np.array([s[2] for s in sessions], dtype=float),
                         np.array([s[3] for s in sessions], dtype=int), arrival_hours, [s[0] for s in sessions],
                         stall_from=restart(*key, "stall"), reach_from=restart(*key, "reach_live"))
    return out


def decide(charts: dict[tuple[str, str], Chart], episodes: dict[tuple[str, str, str], dt.datetime] | set,
           ) -> list[tuple[str, str, str, str]]:
    """(step, device, kind, 'open' | 'resolved') for each episode that opens or resolves now.
    An episode opens only while the last minutes do not look normal: the state that resolves
    one never opens it."""
    out = []
    for (step, device), chart in sorted(charts.items()):
        threshold = THRESHOLD + (0 if device == ALL else DEVICE_EXTRA)
        for kind, value, recovered in (("stall", chart.stall, chart.stall_recovered),
                                       ("reach_live", chart.reach, chart.reach_recovered)):
            key = (step, device, kind)
            if (value >= threshold + (REACH_EXTRA if kind == "reach_live" else 0) and not recovered
                    and key not in episodes):
                out.append((step, device, kind, "open"))
            elif key in episodes and (value < RESOLVED_BELOW or recovered):
                out.append((step, device, kind, "resolved"))
    return out


class Detector:
    """The live pass of `serve`: each site's baseline read at most every BASELINE_EVERY minutes
    (a rollup in between shows at the next read; an empty one is read again at every pass)."""

    def __init__(self) -> None:
        self._curves: dict[str, tuple[tuple[Any, ...], dict[tuple[str, str], Curve]]] = {}

    def curves(self, client: Client, site: Site, now: dt.datetime) -> dict[tuple[str, str], Curve]:
        slot = now.replace(minute=now.minute - now.minute % BASELINE_EVERY, second=0, microsecond=0)
        key = (slot, site)
        cached = self._curves.get(site.id)
        if cached is None or cached[0] != key or not cached[1]:
            fresh = {k: c for k, c in baseline(client, site, now).items() if c.sessions >= site.alerts.min_sample}
            cached = self._curves[site.id] = (key, fresh)
        return cached[1]

    def evaluate(self, client: Client, site: Site, *, now: dt.datetime, timeout_s: int = 1800) -> list[Alert]:
        """Find, record and return the live alerts and resolutions of `site` at `now` (new ones only)."""
        curves = self.curves(client, site, now)
        if not curves:
            return []
        episodes, resolved = live_episodes(client, site, now)
        found = charts(site, now, curves, entries(client, site, now, timeout_s=timeout_s), resolved)
        alerts = []
        for step, device, kind, state in decide(found, episodes):
            chart = found[(step, device)]
            causes = (rank_causes(client, site, step, chart.stalled_ids,
                                  usual_until=now - dt.timedelta(minutes=LOOKBACK))
                      if kind == "stall" and state == "open" else [])
            alerts.append(make_alert(site_id=site.id, now=now, step=step, device=device, kind=kind, chart=chart,
                                     state=state, causes=causes, since=episodes.get((step, device, kind))))
        record(client, site, alerts)
        return alerts


def evaluate(client: Client, site: Site, *, now: dt.datetime, timeout_s: int = 1800) -> list[Alert]:
    """One live pass on `site` at `now`, without a cached baseline."""
    return Detector().evaluate(client, site, now=now, timeout_s=timeout_s)


def make_alert(*, site_id: str, now: dt.datetime, step: str, device: str, kind: str, chart: Chart, state: str,
               causes: list[Cause] | None = None, since: dt.datetime | None = None) -> Alert:
    """The `alerts` row of an opening or a resolution. For a stall, `current_rate` and
    `baseline_rate` are the share of its sessions that moved on and the share expected by now."""
    who = "" if device == ALL else f" on {device}"
    causes = causes or []
    if kind == "stall":
        minutes, entered, observed, expected = chart.stall_since, chart.entered, chart.moved, chart.expected_moved
        if state == "open":
            what = f"{step}{who}: {observed} of {entered} moved on in the last {minutes} min ({expected:.1f} expected)"
        else:
            what = f"{step}{who}: shoppers move on again ({observed} of {entered} in the last {minutes} min)"
        rates = (expected / entered, observed / entered) if entered else (0.0, 0.0)
        statistic = chart.stall
    else:
        minutes, entered, observed, expected = (chart.reach_since, chart.arrivals, chart.arrivals,
                                                chart.expected_arrivals)
        if state == "open":
            what = f"{step}{who}: {observed} shoppers arrived in the last {minutes} min ({expected:.1f} expected)"
        else:
            what = f"{step}{who}: shoppers arrive again ({observed} in the last {minutes} min)"
        rates, statistic = (expected, float(observed)), chart.reach
    cause = describe(causes, len(chart.stalled_ids) if kind == "stall" else 0) if state == "open" else ""
    if cause and kind == "stall":
        what += f"; {cause}"
    start = now - dt.timedelta(minutes=minutes)
    return Alert(site_id, now, step, start.date(), now.date(), rates[0], rates[1], entered, statistic,
                 f"{site_id}: {what}", device, kind, 0, state, window_minutes=minutes, expected=expected,
                 observed=observed, cause=cause, causes=[(c.factor, c.value, c.share, c.usual_share) for c in causes],
                 since=since or start)


PANEL_MINUTES = 60


def panel(client: Client, site: Site, *, now: dt.datetime, timeout_s: int = 1800) -> dict[str, Any]:
    """The live panel (dashboard, `chainlens status`): per checkout step, the shoppers who entered
    it in the last PANEL_MINUTES, how many moved on and how many the baseline expected by now;
    and the open live alerts."""
    curves = {k: c for k, c in baseline(client, site, now).items() if k[1] == ALL}
    found = charts(site, now, curves, entries(client, site, now, timeout_s=timeout_s)) if curves else {}
    steps: list[dict[str, Any]] = []
    for step in site.checkout_steps:
        chart, curve = found.get((step, ALL)), curves.get((step, ALL))
        if chart is None or curve is None:
            steps.append({"step": step, "entered": None, "moved": None, "expected": None})
            continue
        recent = [i for i, e in enumerate(chart.entries) if e >= LOOKBACK - PANEL_MINUTES]
        steps.append({"step": step, "entered": len(recent), "moved": sum(chart.moved_on[i] for i in recent),
                      "expected": round(sum(chart.expected_by_now[i] for i in recent), 1)})
    rows = client.query(
        "SELECT step, device, kind, argMax(state, detected_at) AS state, argMax(message, detected_at), "
        "argMax(cause, detected_at), argMax(since, detected_at) FROM alerts "
        "WHERE site_id = {site:String} AND kind IN {kinds:Array(String)} GROUP BY step, device, kind "
        "HAVING state = 'open' ORDER BY step, device, kind",
        parameters={"site": site.id, "kinds": list(LIVE_KINDS)}).result_rows
    alerts = [{"step": r[0], "device": r[1], "kind": r[2], "message": r[4], "cause": r[5],
               "since": r[6].replace(tzinfo=dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")}
              for r in rows]
    return {"minutes": PANEL_MINUTES, "steps": steps, "alerts": alerts}


def live_episodes(client: Client, site: Site, now: dt.datetime) -> tuple[
        dict[tuple[str, str, str], dt.datetime], dict[tuple[str, str, str], float]]:
    """(step, device, kind) of the live episodes whose latest record is an opening, with their
    start; and of those whose latest is a resolution, how many minutes ago it came."""
    rows = client.query(
        "SELECT step, device, kind, argMax(state, detected_at), argMax(since, detected_at), max(detected_at) "
        "FROM alerts WHERE site_id = {site:String} AND kind IN {kinds:Array(String)} GROUP BY step, device, kind",
        parameters={"site": site.id, "kinds": list(LIVE_KINDS)}).result_rows
    opened = {(r[0], r[1], r[2]): r[4].replace(tzinfo=dt.UTC) for r in rows if r[3] == "open"}
    resolved = {(r[0], r[1], r[2]): (now - r[5].replace(tzinfo=dt.UTC)).total_seconds() / 60
                for r in rows if r[3] != "open"}
    return opened, resolved
