"""The figures behind the dashboard, for one site and a range of days (queries in ingestion/figures.py)."""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from clickhouse_connect.driver.client import Client

from chainlens.core.settings import Site
from ingestion.figures import ALL, DEVICES, Job, Rows, fetch, parameters


def days_available(client: Client, site: Site) -> tuple[dt.date | None, dt.date | None]:
    row = client.query("SELECT minOrNull(day), maxOrNull(day) FROM chain_daily WHERE site_id = {site:String}",
                       parameters={"site": site.id}).result_rows[0]
    return row[0], row[1]


# The report's queries by key, the slowest first (bench/dashboard.py lists them), and those
# whose previous period is asked for the values they show early, so that it can be. A key's
# figure is its name; `NAME_before` is that figure over the previous period.
FIGURES = (
    "landing", "left", "obstacles", "timing", "breakdown", "products", "search", "form_fields", "headline",
    "headline_before", "revival", "checkout", "fast_track", "interventions", "repeat", "checkout_by_day",
    "checkout_by_day_before", "campaigns", "segments", "fulfillment", "fulfillment_by_day", "satisfaction",
    "checkout_by_segment", "abandoned_products", "cart", "funnel", "alerts", "return_reasons",
)


def report(clients: Client | Sequence[Client], site: Site, *, start: dt.date, end: dt.date, stopped: str = "",
           device: str = ALL, segment: str = ALL) -> dict[str, Any]:
    """The dashboard's figures; with several clients (connections to one store), their queries
    run at once (ingestion/figures.py, `fetch`)."""
    p = parameters(site, start=start, end=end, stopped=stopped, device=device, segment=segment)
    # The previous period of the same length, for the headline's changes.
    before = parameters(site, start=start - (end - start) - dt.timedelta(days=1), end=start - dt.timedelta(days=1),
                        device=device, segment=segment)
    jobs: dict[str, Job] = {key: (key.removesuffix("_before"), before if key.endswith("_before") else p)
                            for key in FIGURES}
    # The previous period's rows of the values shown now.
    then: dict[str, tuple[str, Callable[[Rows], Job]]] = {
        "breakdown": ("breakdown_before", lambda now: (
            "breakdown", {**before, "pairs": [(r["dimension"], r["value"]) for r in now]})),
        "products": ("products_before", lambda now: ("products", {**before, "values": [r["item_id"] for r in now]})),
        "search": ("search_before", lambda now: ("search", {**before, "values": [r["term"] for r in now]})),
    }
    got = fetch(_listed(clients), jobs, then)
    return {
        "headline": got["headline"][0], "headline_before": got["headline_before"][0],
        "previous": [before["start"].isoformat(), before["end"].isoformat()],
        "left": got["left"], "stopped": stopped,
        "abandoned_products": got["abandoned_products"], "min_sample": site.obstacle_min_sample,
        "device": device, "devices": list(DEVICES), "checkout_by_day": got["checkout_by_day"],
        "checkout_by_day_before": got["checkout_by_day_before"],
        "site": site.id, "start": start.isoformat(), "end": end.isoformat(), "funnel": got["funnel"],
        "checkout": got["checkout"], "timing": got["timing"],
        "obstacles": got["obstacles"], "fast_track": got["fast_track"][0],
        "alerts": got["alerts"], "cart_abandonment": got["cart"][0]["cart_abandonment"],
        "segment": segment, "segment_names": site.segment_names, "segments": got["segments"],
        "checkout_by_segment": side_by_side(got["checkout_by_segment"]),
        "landing": got["landing"], "campaigns": got["campaigns"],
        "fulfillment": got["fulfillment"][0], "fulfillment_by_day": got["fulfillment_by_day"],
        "return_reasons": got["return_reasons"], "satisfaction": got["satisfaction"],
        "interventions": got["interventions"], "act_min_sample": site.intervene.min_sample,
        "breakdowns": breakdowns(got["breakdown"], got["breakdown_before"]),
        "products": compared(got["products"], got["products_before"], "item_id", ("viewed", "purchased")),
        "search": compared(got["search"], got["search_before"], "term", ("searches", "conversion_rate")),
        "form_fields": got["form_fields"],
        "repeat": got["repeat"], "revival": got["revival"],
    }


def _listed(clients: Client | Sequence[Client]) -> list[Client]:
    return [clients] if isinstance(clients, Client) else list(clients)


BREAKDOWNS = ("browser", "os", "referrer", "landing_source", "custom_event", "invalid_field")


def compared(now: list[dict[str, Any]], earlier_rows: list[dict[str, Any]], key: str,
             kept: tuple[str, ...]) -> list[dict[str, Any]]:
    """A figure's largest rows this period, each with the `kept` figures of the same `key` in
    the previous period (`NAME_before`, None when it had none)."""
    earlier = {r[key]: r for r in earlier_rows}
    return [{**r, **{f"{k}_before": earlier[r[key]][k] if r[key] in earlier else None for k in kept}} for r in now]


def breakdowns(now: list[dict[str, Any]], earlier_rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Each dimension's largest values, with their sessions and conversion in the previous period."""
    earlier = {(r["dimension"], r["value"]): r for r in earlier_rows}
    out: dict[str, list[dict[str, Any]]] = {d: [] for d in BREAKDOWNS}
    for r in now:
        was = earlier.get((r["dimension"], r["value"]))
        out.setdefault(r["dimension"], []).append(
            {**r, "sessions_before": was and was["sessions"], "conversion_rate_before": was and was["conversion_rate"]})
    return out


def side_by_side(rows_: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Checkout steps as rows, each segment's reached and abandonment rate beside the others."""
    steps: dict[str, dict[str, Any]] = {}
    for r in rows_:
        steps.setdefault(r["step"], {"step": r["step"], "by": {}})["by"][r["segment"]] = r
    return list(steps.values())


def report_range(clients: Client | Sequence[Client], site: Site, start: str | None, end: str | None,
                 stopped: str | None = None, device: str | None = None, segment: str | None = None) -> dict[str, Any]:
    """`report` for `?from=&to=` (ISO dates; default: the last 7 rolled-up days), with the days available;
    `stopped` narrows the list of sessions that left to one checkout step."""
    first, last = days_available(_listed(clients)[0], site)
    to = dt.date.fromisoformat(end) if end else (last or dt.date.today())
    frm = dt.date.fromisoformat(start) if start else to - dt.timedelta(days=6)
    if stopped and stopped not in site.checkout_steps:
        raise ValueError(f"stopped: {stopped[:40]!r} is not a checkout step of site {site.id!r}")
    if device and device not in DEVICES:
        raise ValueError(f"device: {device[:20]!r} is not one of {', '.join(DEVICES)}")
    if segment and segment not in (ALL, *site.segment_names):
        raise ValueError(f"segment: {segment[:40]!r} is not one of {', '.join(site.segment_names)}")
    data = report(clients, site, start=frm, end=to, stopped=stopped or "", device=device or ALL,
                  segment=segment or ALL)
    data["available"] = [first.isoformat() if first else None, last.isoformat() if last else None]
    return data


# What the figures of a site read changes only when a rollup pass, an alert or a forget
# writes: each of them leaves a row here, so an unchanged answer means unchanged figures.
VERSION = """SELECT (SELECT max(run_at) FROM rollup_state WHERE site_id = {site:String}),
                    (SELECT (count(), max(detected_at)) FROM alerts WHERE site_id = {site:String}),
                    (SELECT (count(), max(at)) FROM forget_log WHERE site_id = {site:String})"""


class ReportCache:
    """The dashboard's figures per view (site, range, filters), kept while the store's version
    of the site is the same: a view opened again, or opened after `warm`, is one small query.
    The figures are those `report_range` gives; the cache never answers from older data."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._views: OrderedDict[tuple[Any, ...], tuple[Any, Site, dict[str, Any]]] = OrderedDict()
        self.hits = self.misses = 0

    def report(self, clients: Client | Sequence[Client], site: Site, *view: str | None) -> dict[str, Any]:
        version = _listed(clients)[0].query(VERSION, parameters={"site": site.id}).result_rows[0]
        key = (site.id, *view)
        kept = self._views.get(key)
        if kept is not None and kept[0] == version and kept[1] is site:  # a reload makes new sites
            self._views.move_to_end(key)
            self.hits += 1
            return kept[2]
        self.misses += 1
        data = report_range(clients, site, *view)
        self._views[key] = (version, site, data)
        while len(self._views) > self.size:
            self._views.popitem(last=False)
        return data


IDLE_DAYS = 14  # the days of abandoned sessions an "auto" idle threshold is the median of
IDLE_MIN_SAMPLE = 20
IDLE_DEFAULT_MS = 30_000.0  # until a step has that many abandoners


def idle_thresholds(client: Client, site: Site) -> dict[str, float]:
    """Per intervention step, how long to wait before an idle shopper counts as at risk: the
    site's `idle_s`, or ("auto") the median time abandoners stayed on the step in the last 14
    days (docs/metrics.md, "Time before abandoning"), 30 s while fewer than 20 left there."""
    steps = list(site.intervene.steps)
    if site.intervene.idle_s != "auto":
        return {step: float(site.intervene.idle_s) * 1000 for step in steps}
    result = client.query("""
        SELECT abandoned_at, count(), quantileExactInclusive(0.5)(ms_before_abandon) FROM chain_sessions
        WHERE site_id = {site:String} AND day >= today() - {days:UInt32} AND abandoned_at IN {steps:Array(String)}
        GROUP BY abandoned_at""", parameters={"site": site.id, "days": IDLE_DAYS, "steps": steps})
    medians = {step: float(ms) for step, n, ms in result.result_rows if n >= IDLE_MIN_SAMPLE and ms}
    return {step: medians.get(step, IDLE_DEFAULT_MS) for step in steps}
