"""The metric definitions of docs/metrics.md computed directly in Python, to check the rollup SQL against.

Written from docs/metrics.md alone, on purpose sharing no code
with ingestion/rollups: the two must agree figure by figure.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Ev:
    session: str
    ts: int  # ms, already skew-corrected
    type: str
    step: str = ""
    name: str = ""
    props: dict[str, str] = field(default_factory=dict)
    device: str = "desktop"
    sn: int = 1
    bot: bool = False
    id: str = ""
    value: float | None = None
    order_id: str = ""


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default, PERCENTILE.INC)."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


@dataclass
class Session:
    day: dt.date
    device: str
    visitor: str
    entered: dict[str, int]
    order: list[str]
    furthest_index: int
    purchased: bool
    last_ts: int
    obstacles: set[tuple[str, str]]
    detail_views: int
    fast_track_views: int
    revenue: float = 0.0


def sessions(events: list[Ev], *, chain: list[str], tz: str, now_ms: int, timeout_s: int) -> list[Session]:
    zone = zoneinfo.ZoneInfo(tz)
    by_session: dict[str, dict[str, Ev]] = defaultdict(dict)
    for e in events:
        if not e.bot:
            by_session[e.session].setdefault(e.id, e)  # each event id once
    out = []
    for evs in by_session.values():
        items = sorted(evs.values(), key=lambda e: e.ts)
        last = max(e.ts for e in items)
        if last >= now_ms - timeout_s * 1000:
            continue  # still open
        first = items[0]
        entered: dict[str, int] = {}
        for e in items:
            if e.step in chain:
                entered[e.step] = min(entered.get(e.step, e.ts), e.ts)
        order = sorted(entered, key=lambda k: (entered[k], chain.index(k)))
        furthest = max((chain.index(k) + 1 for k in entered), default=0)
        selects = [e for e in items if e.type == "step" and e.step == "select"]
        fast = [e for e in selects if e.props.get("in_stock") == "true"
                and _num(e.props.get("ship_days")) is not None and _num(e.props.get("ship_days")) <= 2]
        out.append(Session(
            day=dt.datetime.fromtimestamp(first.ts / 1000, zone).date(), device=first.device,
            visitor="new" if first.sn <= 1 else "returning", entered=entered, order=order,
            furthest_index=furthest, purchased=furthest == len(chain), last_ts=last,
            obstacles={(e.step, e.name) for e in items if e.type == "obstacle" and e.step in chain},
            detail_views=len(selects), fast_track_views=len(fast),
            # docs/metrics.md "Orders and revenue": purchase values, each order once (by id, else by event)
            revenue=sum(v for _, v in {(e.order_id or e.id, e.value) for e in items
                                       if e.step == chain[-1] and e.value is not None}),
        ))
    return out


def _num(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _segments(s: Session) -> list[tuple[str, str]]:
    return [(s.device, s.visitor), (s.device, "all"), ("all", s.visitor), ("all", "all")]


def _by_day_and_segment(ss: list[Session]) -> dict[tuple, list[Session]]:
    groups: dict[tuple, list[Session]] = defaultdict(list)
    for s in ss:
        for seg in _segments(s):
            groups[(s.day, *seg)].append(s)
    return groups


def chain_daily(ss: list[Session], chain: list[str]) -> dict[tuple, tuple]:
    out = {}
    for (day, device, visitor), members in _by_day_and_segment(ss).items():
        for i, step in enumerate(chain, start=1):
            reached = [s for s in members if step in s.entered]
            out[(day, step, i, device, visitor)] = (len(reached), sum(s.purchased for s in reached))
    return out


def checkout_abandonment(ss: list[Session], chain: list[str], checkout: list[str]) -> dict[tuple, tuple]:
    out = {}
    for (day, device, visitor), members in _by_day_and_segment(ss).items():
        for step in checkout:
            k = chain.index(step) + 1
            reached = [s for s in members if step in s.entered]
            if not reached:
                continue
            abandoned = [s for s in reached if s.furthest_index == k]
            continued = [s for s in reached if s.furthest_index > k]
            before = [float(s.last_ts - s.entered[step]) for s in abandoned]
            out[(day, step, k, device, visitor)] = (
                len(reached), len(continued), len(abandoned), len(abandoned) / len(reached),
                quantile(before, 0.5) if before else None)
    return out


def step_timing(ss: list[Session]) -> dict[tuple, tuple]:
    groups: dict[tuple, list[float]] = defaultdict(list)
    for s in ss:
        for a, b in zip(s.order, s.order[1:], strict=False):
            for seg in _segments(s):
                groups[(s.day, a, b, *seg)].append(float(s.entered[b] - s.entered[a]))
    return {key: (len(v), quantile(v, 0.5), quantile(v, 0.75), quantile(v, 0.9), quantile(v, 0.99))
            for key, v in groups.items()}


def obstacle_impact(ss: list[Session], chain: list[str]) -> dict[tuple, tuple]:
    out = {}
    keys = {(s.day, step, kind) for s in ss for step, kind in s.obstacles if step != chain[-1]}
    for day, step, kind in keys:
        k = chain.index(step) + 1
        reached = [s for s in ss if s.day == day and step in s.entered]
        with_ = [s for s in reached if (step, kind) in s.obstacles]
        without = [s for s in reached if (step, kind) not in s.obstacles]
        ab_with = sum(s.furthest_index == k for s in with_)
        ab_without = sum(s.furthest_index == k for s in without)
        rate_with = ab_with / len(with_)
        rate_without = ab_without / len(without) if without else None
        lift = rate_with / rate_without if rate_without else None
        out[(day, step, kind)] = (len(with_), ab_with, rate_with, rate_without, lift)
    return out


def fast_track(ss: list[Session]) -> dict[Any, tuple]:
    days: dict[dt.date, list[int]] = defaultdict(lambda: [0, 0])
    for s in ss:
        days[s.day][0] += s.detail_views
        days[s.day][1] += s.fast_track_views
    return {day: (d, f, f / d) for day, (d, f) in days.items() if d}
