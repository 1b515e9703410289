"""The metric definitions of docs/metrics.md computed directly in Python, to check the rollup SQL against.

Written from docs/metrics.md alone, on purpose sharing no code
with ingestion/rollups: the two must agree figure by figure.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit


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
    anon: str = ""  # the visitor; "" means "a-" + session
    url: str = ""
    ref: str = ""
    clicks: int = 0  # the session's clicks so far, as the snippet counts them (`nc`)


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
    anon: str = ""
    started: int = 0
    currency: str = ""
    landing_path: str = ""
    source: str = "direct"
    medium: str = "(none)"
    campaign: str = ""
    pages: int = 0
    product_views: int = 0
    searches: int = 0
    cart_value: float = 0.0
    first_interaction_ms: float | None = None
    clicks_to_goal: int | None = None
    earlier_cart: bool = False
    segment: str = "browser"
    id: str = ""


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
        out.append(_landing(items, chain, Session(
            day=dt.datetime.fromtimestamp(first.ts / 1000, zone).date(), device=first.device,
            visitor="new" if first.sn <= 1 else "returning", entered=entered, order=order,
            furthest_index=furthest, purchased=furthest == len(chain), last_ts=last,
            obstacles={(e.step, e.name) for e in items if e.type == "obstacle" and e.step in chain},
            detail_views=len(selects), fast_track_views=len(fast),
            # docs/metrics.md "Orders and revenue": purchase values, each order once (by id, else by event)
            revenue=sum(v for _, v in {(e.order_id or e.id, e.value) for e in items
                                       if e.step == chain[-1] and e.value is not None}),
            anon=first.anon or "a-" + first.session, started=first.ts, id=first.session,
        )))
    return out


def abandoned_obstacles(s: Session, chain: list[str]) -> list[str]:
    """docs/metrics.md "Abandonment": the kinds of the obstacles met on the step the session left at."""
    left_at = "" if s.purchased or s.furthest_index == 0 else chain[s.furthest_index - 1]
    return sorted(kind for step, kind in s.obstacles if step == left_at)


def checkout_ms(s: Session, *, cart: str, last_checkout: str) -> float | None:
    """docs/metrics.md "Checkout time": entering the last checkout step minus entering the cart."""
    if cart not in s.entered or last_checkout not in s.entered:
        return None
    return float(s.entered[last_checkout] - s.entered[cart])


# docs/metrics.md "Behavior segments", with the default thresholds and the site's own segments
# as (name, Python predicate) pairs standing for their `where`.
def segment(ss: list[Session], chain: list[str], *, cart: str = "cart",
            own: tuple[tuple[str, Callable[[Session], bool]], ...] = ()) -> None:
    for s in ss:
        s.earlier_cart = s.anon != "" and any(
            o.anon == s.anon and o.started < s.started and cart in o.entered and not o.purchased for o in ss)
        decisive = (cart in s.entered and s.entered[cart] - s.started <= 3 * 60_000 and s.product_views <= 2
                    and s.searches == 0)
        s.segment = next((name for name, holds in own if holds(s)), None) or (
            "decisive" if decisive else "researcher" if s.product_views >= 5 or s.searches >= 2
            else "returning_to_finish" if s.earlier_cart else "browser")


def _host(url: str) -> str:
    host = urlsplit(url).hostname or ""
    return host.removeprefix("www.")


def _landing(items: list[Ev], chain: list[str], s: Session) -> Session:
    """docs/metrics.md "Landing engagement" and "Campaigns" for one session's events, by time."""
    first = items[0]
    pages = [e for e in items if e.type == "page"]
    landing = pages[0] if pages else first
    s.landing_path = urlsplit(landing.url).path or "/"
    utm = dict(parse_qsl(urlsplit(landing.url).query)) if pages else {}
    click = next((k for k, _ in parse_qsl(urlsplit(landing.url).query) if k in ("gclid", "fbclid", "msclkid")),
                 "") if pages else ""
    referrer = "" if _host(first.ref) == _host(first.url) else _host(first.ref)
    implied = {"gclid": "google", "fbclid": "facebook", "msclkid": "bing"}
    s.source = utm.get("utm_source") or implied.get(click) or referrer or "direct"
    s.medium = (utm.get("utm_medium") or ("(not set)" if utm.get("utm_source") else "")
                or {"fbclid": "paid_social", "gclid": "cpc", "msclkid": "cpc"}.get(click)
                or ("referral" if referrer else "(none)"))
    s.campaign = utm.get("utm_campaign", "")
    s.pages = len(pages)

    def views(step: str) -> int:
        return max(sum(e.type == "page" and e.step == step for e in items),
                   sum(e.type == "step" and e.step == step for e in items))

    s.product_views, s.searches = views("select"), views("search")
    valued = [e for e in items
              if e.value is not None and e.step in chain and chain.index(e.step) >= chain.index("cart")]
    s.cart_value = valued[-1].value if valued else 0.0  # type: ignore[assignment]
    engaged = [e.ts for e in items if e.type == "track" and e.name == "engage"]
    moved = [s.entered[k] for k in s.order if k != first.step][:1]
    times = engaged[:1] + moved
    s.first_interaction_ms = float(min(times) - first.ts) if times else None
    at_goal = [e for e in items if e.step == "select" and e.type in ("page", "step")]
    s.clicks_to_goal = (at_goal[0].clicks if at_goal else 0) if "select" in s.entered else None
    return s


def _num(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _segments(s: Session) -> list[tuple[str, str, str]]:
    """The (device, visitor, segment) groups a session counts in: each value or 'all'."""
    return [(d, v, g) for d in (s.device, "all") for v in (s.visitor, "all") for g in (s.segment, "all")]


def _by_day_and_segment(ss: list[Session]) -> dict[tuple, list[Session]]:
    groups: dict[tuple, list[Session]] = defaultdict(list)
    for s in ss:
        for seg in _segments(s):
            groups[(s.day, *seg)].append(s)
    return groups


def chain_daily(ss: list[Session], chain: list[str]) -> dict[tuple, tuple]:
    out = {}
    for (day, device, visitor, seg), members in _by_day_and_segment(ss).items():
        for i, step in enumerate(chain, start=1):
            reached = [s for s in members if step in s.entered]
            out[(day, step, i, device, visitor, seg)] = (len(reached), sum(s.purchased for s in reached))
    return out


def checkout_abandonment(ss: list[Session], chain: list[str], checkout: list[str]) -> dict[tuple, tuple]:
    out = {}
    for (day, device, visitor, seg), members in _by_day_and_segment(ss).items():
        for step in checkout:
            k = chain.index(step) + 1
            reached = [s for s in members if step in s.entered]
            if not reached:
                continue
            abandoned = [s for s in reached if s.furthest_index == k]
            continued = [s for s in reached if s.furthest_index > k]
            before = [float(s.last_ts - s.entered[step]) for s in abandoned]
            out[(day, step, k, device, visitor, seg)] = (
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


def step_moves(ss: list[Session], chain: list[str], checkout: list[str]) -> dict[tuple, tuple]:
    """docs/metrics.md, "Live early warning" (Baseline): per checkout step entered, the UTC hour of
    the entry and the minutes, rounded up, until the first later chain step entered at or after it;
    (entered, moved, moved within 1 … 120 minutes) by (day, hour, step, device) and device 'all'."""
    minutes: dict[tuple, list[int]] = defaultdict(list)
    for s in ss:
        for step in checkout:
            if step not in s.entered:
                continue
            entry = s.entered[step]
            later = [t for k, t in s.entered.items() if chain.index(k) > chain.index(step) and t >= entry]
            waited = max(1, math.ceil((min(later) - entry) / 60_000)) if later else 0
            for device in (s.device, "all"):
                minutes[(s.day, entry // 3_600_000 * 3600, step, device)].append(waited)
    return {key: (len(m), sum(1 for w in m if w), *(sum(1 for w in m if 0 < w <= k) for k in range(1, 121)))
            for key, m in minutes.items()}


Z95 = 1.959963984540054  # the normal quantile of 0.975


def wilson(k: int, n: int) -> tuple[float, float]:
    """Wilson's score interval for k/n (Wilson 1927; Newcombe 1998, method 3)."""
    p, z2 = k / n, Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(k1: int, n1: int, k2: int, n2: int) -> tuple[float, float]:
    """The hybrid score interval for p1 - p2 from the two Wilson intervals (Newcombe 1998, method 10)."""
    p1, p2 = k1 / n1, k2 / n2
    (l1, u1), (l2, u2) = wilson(k1, n1), wilson(k2, n2)
    d = p1 - p2
    return d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def obstacle_cost(ss: list[Session], chain: list[str], *, min_sample: int) -> dict[tuple, tuple]:
    """Per day, step, obstacle and segment: (diff, diff_low, diff_high, orders_lost, insufficient,
    revenue_at_stake); the median order value is the day's, across segments."""
    out = {}
    for (day, step, kind, seg), (n_with, ab_with, _, _, _) in obstacle_impact(ss, chain).items():
        reached = [s for s in ss if s.day == day and step in s.entered and seg in (s.segment, "all")]
        n_without = len(reached) - n_with
        ab_without = sum(s.furthest_index == chain.index(step) + 1 for s in reached) - ab_with
        orders = sorted(s.revenue for s in ss if s.day == day and s.purchased and s.revenue > 0)
        median = quantile(orders, 0.5) if orders else None
        if n_without == 0:
            out[(day, step, kind, seg)] = (None, None, None, None, True, None)
            continue
        diff = ab_with / n_with - ab_without / n_without
        low, high = newcombe(ab_with, n_with, ab_without, n_without)
        lost = n_with * diff
        out[(day, step, kind, seg)] = (diff, low, high, lost, n_with < min_sample or n_without < min_sample,
                                  None if median is None else lost * median)
    return out


def obstacle_impact(ss: list[Session], chain: list[str]) -> dict[tuple, tuple]:
    out = {}
    keys = {(s.day, step, kind, seg) for s in ss for step, kind in s.obstacles if step != chain[-1]
            for seg in (s.segment, "all")}
    for day, step, kind, seg in keys:
        k = chain.index(step) + 1
        reached = [s for s in ss if s.day == day and step in s.entered and seg in (s.segment, "all")]
        with_ = [s for s in reached if (step, kind) in s.obstacles]
        without = [s for s in reached if (step, kind) not in s.obstacles]
        ab_with = sum(s.furthest_index == k for s in with_)
        ab_without = sum(s.furthest_index == k for s in without)
        rate_with = ab_with / len(with_)
        rate_without = ab_without / len(without) if without else None
        lift = rate_with / rate_without if rate_without else None
        out[(day, step, kind, seg)] = (len(with_), ab_with, rate_with, rate_without, lift)
    return out


def fast_track(ss: list[Session]) -> dict[Any, tuple]:
    days: dict[dt.date, list[int]] = defaultdict(lambda: [0, 0])
    for s in ss:
        days[s.day][0] += s.detail_views
        days[s.day][1] += s.fast_track_views
    return {day: (d, f, f / d) for day, (d, f) in days.items() if d}


def _groups(ss: list[Session], key: Callable[[Session], tuple],
            sets: list[tuple[int, ...]]) -> dict[tuple, list[Session]]:
    """GROUPING SETS: for each set of dimension positions, the others read 'all'."""
    groups: dict[tuple, list[Session]] = defaultdict(list)
    for s in ss:
        values = key(s)
        for kept in sets:
            groups[(s.day, *(v if i in kept else "all" for i, v in enumerate(values)))].append(s)
    return groups


def landing_engagement(ss: list[Session], *, engaged_ms: float = 7000, clicks: int = 3) -> dict[tuple, tuple]:
    """(day, landing_path, source, device, segment) → (sessions, engaged_7s, bounced,
    reached_select_in_3_clicks, median_s_to_first_interaction)."""
    sets = [(0, 1, 2, 3), (0, 1), (0, 2), (0, 3), (0,), (1,), (2,), (3,), ()]
    out = {}
    for key, members in _groups(ss, lambda s: (s.landing_path, s.source, s.device, s.segment), sets).items():
        firsts = [s.first_interaction_ms for s in members if s.first_interaction_ms is not None]
        out[key] = (
            len(members), sum(t <= engaged_ms for t in firsts),
            sum(s.pages <= 1 and s.first_interaction_ms is None for s in members),
            sum(s.clicks_to_goal is not None and s.clicks_to_goal <= clicks for s in members),
            quantile(firsts, 0.5) / 1000 if firsts else None)
    return out


def campaigns(ss: list[Session], *, cart: str = "cart") -> dict[tuple, tuple]:
    """(day, source, medium, campaign, device) → (sessions, carts, orders, revenue by currency,
    carts_abandoned, cart_abandonment)."""
    sets = [(0, 1, 2, 3), (0, 1, 2), (0, 3), (0,), (3,), ()]
    out = {}
    for key, members in _groups(ss, lambda s: (s.source, s.medium, s.campaign, s.device), sets).items():
        carts = [s for s in members if cart in s.entered]
        revenue: dict[str, float] = defaultdict(float)
        for s in members:
            if s.purchased:
                revenue[s.currency] += s.revenue
        left = sum(not s.purchased for s in carts)
        out[key] = (len(members), len(carts), sum(s.purchased for s in members), dict(revenue), left,
                    left / len(carts) if carts else None)
    return out


# docs/metrics.md "After the purchase" and "Satisfaction"


@dataclass
class Order:
    order_id: str
    day: dt.date
    device: str
    segment: str
    met_obstacle: bool
    hours_to_ship: float | None
    hours_to_deliver: float | None
    on_time: bool | None
    tracking_viewed: bool
    returned: bool
    return_reason: str


def orders(events: list[Ev], ss: list[Session], *, chain: list[str], tz: str) -> dict[str, Order]:
    """Orders by the first purchase event carrying their id; what came after, found by order id."""
    zone = zoneinfo.ZoneInfo(tz)
    by_session = {s.id: s for s in ss}
    out = {}
    for oid in {e.order_id for e in events if e.order_id and e.step == chain[-1] and not e.bot}:
        mine = sorted((e for e in events if e.order_id == oid and not e.bot), key=lambda e: e.ts)
        bought = next(e for e in mine if e.step == chain[-1])
        session = by_session.get(bought.session)

        shipped, delivered = (next((e.ts for e in mine if e.step == step), None) for step in ("shipped", "delivered"))
        promises = [e for e in mine if e.props.get("promised_by")]
        promised = (dt.datetime.fromisoformat(promises[-1].props["promised_by"].replace("Z", "+00:00"))
                    if promises else None)
        returns = [e for e in mine if e.step == "returned"]
        out[oid] = Order(
            order_id=oid, day=dt.datetime.fromtimestamp(bought.ts / 1000, zone).date(), device=bought.device,
            segment=session.segment if session else "", met_obstacle=bool(session and session.obstacles),
            hours_to_ship=None if shipped is None else (shipped - bought.ts) / 3_600_000,
            hours_to_deliver=None if delivered is None else (delivered - bought.ts) / 3_600_000,
            on_time=None if delivered is None or promised is None else delivered <= promised.timestamp() * 1000,
            tracking_viewed=any(e.step == "tracking_viewed" for e in mine), returned=bool(returns),
            return_reason=(returns[-1].props.get("reason") or "(not given)") if returns else "")
    return out


def fulfillment(os_: dict[str, Order]) -> dict[tuple, tuple]:
    """(day, device, segment) → (orders, shipped, delivered, p50/p90 hours to ship, p50/p90 hours to
    deliver, with_promise, on_time, tracking_viewed, returned)."""
    groups: dict[tuple, list[Order]] = defaultdict(list)
    for o in os_.values():
        for d in (o.device, "all"):
            for g in (o.segment, "all"):
                groups[(o.day, d, g)].append(o)
    out = {}
    for key, members in groups.items():
        ship = [o.hours_to_ship for o in members if o.hours_to_ship is not None]
        deliver = [o.hours_to_deliver for o in members if o.hours_to_deliver is not None]
        out[key] = (len(members), len(ship), len(deliver),
                    quantile(ship, 0.5) if ship else None, quantile(ship, 0.9) if ship else None,
                    quantile(deliver, 0.5) if deliver else None, quantile(deliver, 0.9) if deliver else None,
                    sum(o.on_time is not None for o in members), sum(o.on_time is True for o in members),
                    sum(o.tracking_viewed for o in members), sum(o.returned for o in members))
    return out


def nps(scores: list[int]) -> tuple[float, float, float]:
    """NPS in points with its 95% adjusted Wald interval (three answers added: 3/4 promoter,
    3/4 detractor, 3/2 passive; Rocks 2016), cut to [-100, 100]."""
    n = len(scores)
    promoters, detractors = sum(x >= 9 for x in scores), sum(x <= 6 for x in scores)
    p, d = (promoters + 0.75) / (n + 3), (detractors + 0.75) / (n + 3)
    half = Z95 * math.sqrt(max(0.0, p + d - (p - d) ** 2) / (n + 3))
    return (100 * (promoters - detractors) / n, max(-100.0, 100 * (p - d - half)),
            min(100.0, 100 * (p - d + half)))


def satisfaction(events: list[Ev], os_: dict[str, Order], ss: list[Session], *, tz: str) -> dict[tuple, tuple]:
    """(day, asked_at, device, segment, link) → (responses, promoters, passives, detractors, nps, low, high)."""
    zone = zoneinfo.ZoneInfo(tz)
    by_session = {s.id: s for s in ss}
    answers = {e.id: e for e in events if e.type == "track" and e.name == "feedback" and not e.bot}
    groups: dict[tuple, list[int]] = defaultdict(list)
    for e in answers.values():
        order, session = os_.get(e.order_id), by_session.get(e.session)
        device = order.device if order else session.device if session else "unknown"
        segment = order.segment if order else session.segment if session else "unknown"
        met = order.met_obstacle if order else bool(session.obstacles) if session else None
        links = ["all"] + ([] if met is None else ["met_obstacle" if met else "no_obstacle"])
        if order and order.on_time is not None:
            links.append("on_time" if order.on_time else "late")
        asked = e.props.get("asked_at") or "(not set)"
        score = int(e.props["score"])
        day = dt.datetime.fromtimestamp(e.ts / 1000, zone).date()
        for a in (asked, "all"):
            for d in (device, "all"):
                for g in (segment, "all"):
                    for link in links:
                        groups[(day, a, d, g, link)].append(score)
    return {key: (len(v), sum(x >= 9 for x in v), sum(7 <= x <= 8 for x in v), sum(x <= 6 for x in v), *nps(v))
            for key, v in groups.items()}
