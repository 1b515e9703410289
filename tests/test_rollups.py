"""Rollup tables against hand computations and against tests/reference.py (hypothesis)."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from chainlens.core.fields import Client
from chainlens.core.loading import from_mapping
from chainlens.core.rows import validate_event
from chainlens.core.settings import ConfigError, Settings
from chainlens.core.spoolfile import rows_body
from ingestion import store
from ingestion.report import report_range
from ingestion.rollup import rebuild_days, rollup
from ingestion.tables import NAMES as TABLES
from tests import reference as ref
from tests.conftest import make_config, site_config

CHAIN = ["discover", "search", "select", "cart", "checkout.info", "checkout.shipping", "checkout.payment",
         "checkout.review", "purchase"]
CHECKOUT = CHAIN[3:-1]
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
NOW_MS = int(NOW.timestamp() * 1000)
H = 3_600_000
M = 60_000


def reset(client: Any) -> None:
    for table in ("events", "order_events", "rollup_state", *TABLES, *(f"{t}_staging" for t in TABLES)):
        client.command(f"TRUNCATE TABLE {table}")


def site_settings(tmp: Path, tz: str = "UTC") -> Settings:
    return from_mapping(make_config(tmp, sites=[site_config(timezone=tz)]))


def load(client: Any, settings: Settings, events: list[ref.Ev], *, received_ms: int = NOW_MS) -> None:
    site = settings.sites[0]
    rows = []
    for e in events:
        raw = {"id": e.id, "type": e.type, "ts": e.ts, "sid": e.session, "aid": e.anon or "a-" + e.session,
               "sn": e.sn, "step": e.step or None, "name": e.name or None, "props": e.props or None,
               "value": e.value, "order_id": e.order_id or None, "url": e.url or None, "ref": e.ref or None,
               "nc": e.clicks or None}
        rows.append(validate_event(raw, site=site, client=Client(device=e.device, is_bot=e.bot),
                                   received_ms=received_ms, sent_at=None, age_limit=False))
    # A fresh token: an identical block inserted by an earlier example must not be deduplicated away.
    store.insert_events(client, rows_body(rows), token=str(uuid.uuid4()))


def ev(session: str, minute: float, kind: str, step: str = "", name: str = "", **kw: Any) -> ref.Ev:
    base = kw.pop("base", NOW_MS - 26 * H)
    return ref.Ev(session=session, ts=int(base + minute * M), type=kind, step=step, name=name,
                  id=kw.pop("id", str(uuid.uuid4())), **kw)


SEGMENTED = ("chain_daily", "checkout_abandonment_daily", "step_timing_daily", "obstacle_impact_daily")


def table(client: Any, name: str, where: str = "1", *, segment: str | None = "all") -> list[dict[str, Any]]:
    """A table's rows; the segmented tables' whole-site rows unless `segment` says otherwise."""
    if name in SEGMENTED and segment is not None:
        where += f" AND segment = '{segment}'"
    result = client.query(f"SELECT * FROM {name} WHERE {where}")
    return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]


def hand_sessions() -> list[ref.Ev]:
    dup = str(uuid.uuid4())
    return [
        # A: buys, via a back-move payment -> shipping, skipping the optional review.
        ev("A", 0, "page", "discover"), ev("A", 2, "page", "select"),
        ev("A", 2.5, "step", "select", props={"in_stock": "true", "ship_days": "2"}),
        ev("A", 5, "page", "cart"), ev("A", 7, "page", "checkout.info"),
        ev("A", 9, "page", "checkout.payment"), ev("A", 10, "page", "checkout.shipping"),
        ev("A", 12, "step", "purchase"),
        # B: abandons at shipping after a shipping cost, with a duplicated event.
        ev("B", 0, "page", "cart", device="mobile"), ev("B", 1, "page", "checkout.info", device="mobile"),
        ev("B", 3, "page", "checkout.shipping", device="mobile", id=dup),
        ev("B", 3, "page", "checkout.shipping", device="mobile", id=dup),
        ev("B", 4, "obstacle", "checkout.shipping", "shipping_cost_shown", device="mobile"),
        ev("B", 6, "track", "checkout.shipping", "step_time", device="mobile"),
        # C: abandons at the cart; a returning visitor; repeated cart entries.
        ev("C", 0, "page", "cart", sn=2), ev("C", 3, "page", "cart", sn=2), ev("C", 5, "track", "cart", "x", sn=2),
        # D: still open (last event 10 minutes ago): not in any table yet.
        ev("D", 0, "page", "cart", base=NOW_MS - 20 * M), ev("D", 10, "page", "checkout.info", base=NOW_MS - 20 * M),
        # E: a bot: excluded.
        ev("E", 0, "page", "cart", bot=True), ev("E", 1, "step", "purchase", bot=True),
        # F: crosses midnight: starts 23:58 the day before yesterday, counts on that day.
        ev("F", 0, "page", "select", base=NOW_MS - 36 * H - 2 * M),
        ev("F", 4, "step", "select", props={"in_stock": "false", "ship_days": "1"}, base=NOW_MS - 36 * H - 2 * M),
        ev("F", 5, "page", "cart", base=NOW_MS - 36 * H - 2 * M),
    ]


def test_hand_computed_session_set(db: Any, tmp_path: Path) -> None:
    reset(db)
    settings = site_settings(tmp_path)
    load(db, settings, hand_sessions())
    rollup(db, settings, now=NOW)
    yesterday, before = (NOW - dt.timedelta(hours=26)).date(), (NOW - dt.timedelta(hours=36, minutes=2)).date()
    sessions = {r["session_id"]: r for r in table(db, "chain_sessions")}
    assert set(sessions) == {"A", "B", "C", "F"}  # D open, E a bot
    assert sessions["F"]["day"] == before and sessions["A"]["day"] == yesterday
    assert sessions["A"]["steps"] == ["discover", "select", "cart", "checkout.info", "checkout.payment",
                                      "checkout.shipping", "purchase"]
    assert sessions["A"]["purchased"] and sessions["A"]["abandoned_at"] == ""
    assert sessions["B"]["abandoned_at"] == "checkout.shipping" and sessions["B"]["events"] == 5
    assert sessions["C"]["visitor"] == "returning" and sessions["B"]["device"] == "mobile"

    cad = {(r["step"], r["device"], r["visitor"]): r
           for r in table(db, "checkout_abandonment_daily", f"day = '{yesterday}'")}
    cart = cad[("cart", "all", "all")]
    assert (cart["reached"], cart["continued"], cart["abandoned"]) == (3, 2, 1)
    assert cart["abandonment_rate"] == pytest.approx(1 / 3)
    assert cart["median_ms_before_abandon"] == 5 * M  # C: last event 5 min after entering the cart
    ship = cad[("checkout.shipping", "all", "all")]
    assert (ship["reached"], ship["continued"], ship["abandoned"]) == (2, 1, 1)
    assert ship["median_ms_before_abandon"] == 3 * M  # B: 3 min from shipping to its last event
    assert ("checkout.review", "all", "all") not in cad  # skipped by everyone: nobody reached it
    assert cad[("cart", "mobile", "all")]["reached"] == 1

    timing = {(r["step"], r["next_step"]): r
              for r in table(db, "step_timing_daily", f"device = 'all' AND visitor = 'all' AND day = '{yesterday}'")}
    assert timing[("checkout.payment", "checkout.shipping")]["p50_ms"] == 1 * M  # the back-move
    assert timing[("cart", "checkout.info")]["transitions"] == 2
    assert timing[("cart", "checkout.info")]["p50_ms"] == 1.5 * M  # the mean of 2 and 1 minutes: a true median

    impact = table(db, "obstacle_impact_daily")
    assert len(impact) == 1
    row = impact[0]
    assert (row["step"], row["kind"], row["sessions_with"], row["abandoned_with"]) == (
        "checkout.shipping", "shipping_cost_shown", 1, 1)
    assert row["rate_with"] == 1 and row["rate_without"] == 0 and row["lift"] is None

    fast = {r["day"]: r for r in table(db, "fast_track_daily")}
    assert (fast[yesterday]["detail_views"], fast[yesterday]["fast_track_views"]) == (1, 1)
    assert (fast[before]["detail_views"], fast[before]["fast_track_views"]) == (1, 0)

    daily = {(r["step"], r["device"], r["visitor"]): r for r in table(db, "chain_daily", f"day = '{yesterday}'")}
    assert daily[("cart", "all", "all")]["sessions_reached"] == 3
    assert daily[("purchase", "all", "all")]["sessions_purchased"] == 1
    assert daily[("checkout.review", "all", "all")]["sessions_reached"] == 0  # every chain step has a row


def test_rollup_is_idempotent_and_incremental(db: Any, tmp_path: Path) -> None:
    reset(db)
    settings = site_settings(tmp_path)
    load(db, settings, hand_sessions())
    first = rollup(db, settings, now=NOW)[0]
    snapshot = {t: sorted(map(repr, table(db, t))) for t in TABLES}
    again = rollup(db, settings, now=NOW)[0]
    # Nothing new arrived: only today, where session D is still open, is looked at again.
    assert again.days == [NOW.date()] and {t: sorted(map(repr, table(db, t))) for t in TABLES} == snapshot
    forced = rollup(db, settings, now=NOW, since=first.days[0])[0]
    assert forced.days and {t: sorted(map(repr, table(db, t))) for t in TABLES} == snapshot
    # A late event for C and the open session D closing: only their days are recomputed.
    load(db, settings, [ev("C", 8, "page", "checkout.info", sn=2)], received_ms=NOW_MS + 30 * M)
    later = rollup(db, settings, now=NOW + dt.timedelta(hours=1))[0]
    assert later.days == [(NOW - dt.timedelta(hours=26)).date(), NOW.date()]
    sessions = {r["session_id"]: r for r in table(db, "chain_sessions")}
    assert sessions["C"]["furthest"] == "checkout.info" and "D" in sessions


def test_days_follow_the_site_time_zone(db: Any, tmp_path: Path) -> None:
    reset(db)
    settings = site_settings(tmp_path, tz="America/New_York")  # UTC-5 in March before DST
    base = int(dt.datetime(2026, 3, 9, 3, 0, tzinfo=dt.UTC).timestamp() * 1000)  # 22:00 on the 8th in New York
    load(db, settings, [ev("N", 0, "page", "cart", base=base), ev("N", 1, "step", "purchase", base=base)])
    rollup(db, settings, now=NOW)
    assert [r["day"] for r in table(db, "chain_sessions")] == [dt.date(2026, 3, 8)]


# -- property tests: random session sets against tests/reference.py ------------------------------

KINDS = ["shipping_cost_shown", "payment_declined", "js_error"]


LANDINGS = ["https://shop.example/", "https://shop.example/sale?utm_source=news&utm_medium=email&utm_campaign=spring",
            "https://shop.example/p/1?gclid=x1", "https://shop.example/p/2?utm_source=ig&fbclid=y",
            "https://shop.example/search?q=boots"]
REFERRERS = ["", "https://www.google.com/search", "https://shop.example/cart", "https://blog.example/post"]


@st.composite
def event_sets(draw: Any) -> list[ref.Ev]:
    events: list[ref.Ev] = []
    for n in range(draw(st.integers(1, 12))):
        sid = f"s{n}"
        device = draw(st.sampled_from(["desktop", "mobile", "tablet"]))
        sn = draw(st.integers(1, 3))
        bot = draw(st.booleans()) and draw(st.booleans()) and draw(st.booleans())
        anon = draw(st.sampled_from(["", "v1", "v2"]))  # some visitors come back in another session
        landing, referrer = draw(st.sampled_from(LANDINGS)), draw(st.sampled_from(REFERRERS))
        t = NOW_MS - draw(st.integers(40, 4 * 24 * 60)) * M  # some sessions still open
        clicks = 0
        for i in range(draw(st.integers(1, 8))):  # distinct events get distinct ids; copies share theirs
            t += draw(st.integers(0, 20)) * M + draw(st.integers(1, 999))  # no two events at one time
            if t > NOW_MS:
                break
            kind = draw(st.sampled_from(["page", "step", "obstacle", "track", "track"]))
            step = draw(st.sampled_from(CHAIN + [""])) if kind in ("page", "track") else draw(st.sampled_from(CHAIN))
            props = {}
            if kind == "step" and step == "select":
                props = {"in_stock": draw(st.sampled_from(["true", "false"])),
                         "ship_days": str(draw(st.integers(0, 5)))}
            value, order = None, ""
            if step == CHAIN[-1] and kind in ("step", "track"):  # purchases, some sent twice for one order
                value = draw(st.sampled_from([None, 19.9, 59.9]))
                order = draw(st.sampled_from(["", "o-1", "o-2"]))
            elif kind == "step" and step in CHAIN[3:]:
                value = draw(st.sampled_from([None, 25.0, 120.0]))  # the cart's value as it goes
            clicks += draw(st.integers(0, 2))
            name = (draw(st.sampled_from([*KINDS, "engage"])) if kind == "track" else
                    draw(st.sampled_from(KINDS)) if kind == "obstacle" else "")
            e = ref.Ev(session=sid, ts=t, type=kind, step=step, name=name,
                       props=props, device=device, sn=sn, bot=bot, id=str(uuid.UUID(int=len(events) + 1)),
                       value=value, order_id=order, anon=anon,
                       url=landing if i == 0 else f"https://shop.example/{step or 'about'}", ref=referrer,
                       clicks=clicks if kind in ("page", "step") else 0)
            events.append(e)
            if draw(st.integers(0, 9)) == 0:
                events.append(e)  # a retried copy
    return events


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _same(got: dict[tuple, tuple], want: dict[tuple, tuple]) -> None:
    assert set(got) == set(want)
    for key, values in want.items():
        assert all(_close(g, w) for g, w in zip(got[key], values, strict=True)), (key, got[key], values)


@pytest.mark.slow  # the property runs: `make test`, not the fast loop
@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(events=event_sets(), tz=st.sampled_from(["UTC", "Asia/Kolkata", "America/Los_Angeles"]))
def test_every_figure_matches_the_definitions(db: Any, tmp_path: Path, events: list[ref.Ev], tz: str) -> None:
    reset(db)
    settings = from_mapping(make_config(tmp_path, sites=[site_config(
        timezone=tz, segments=[{"name": "big_basket", "where": "cart_value >= 100"}])]))
    load(db, settings, events)
    rollup(db, settings, now=NOW)
    ss = ref.sessions(events, chain=CHAIN, tz=tz, now_ms=NOW_MS, timeout_s=settings.rollup.session_timeout_s)
    ref.segment(ss, CHAIN, own=(("big_basket", lambda s: s.cart_value >= 100),))
    got = table(db, "chain_sessions")
    assert len(got) == len(ss)
    assert sorted(round(r["revenue"], 6) for r in got) == sorted(round(s.revenue, 6) for s in ss)
    fields = ("segment", "landing_path", "source", "medium", "campaign", "pages", "product_views", "searches",
              "cart_value", "first_interaction_ms", "clicks_to_goal", "earlier_cart")
    assert sorted((tuple(r[f] for f in fields) for r in got), key=repr) == sorted(
        (tuple(getattr(s, f) for f in fields) for s in ss), key=repr), "per-session landing, campaign and segment"
    assert sorted((r["checkout_ms"] for r in got), key=repr) == sorted(
        (ref.checkout_ms(s, cart="cart", last_checkout=CHAIN[-2]) for s in ss), key=repr), "checkout time"
    assert sorted((r["session_id"], sorted(r["abandoned_obstacles"])) for r in got) == sorted(
        (s.id, ref.abandoned_obstacles(s, CHAIN)) for s in ss), "obstacles on the step left at"
    _same({(r["day"], r["step"], r["step_index"], r["device"], r["visitor"], r["segment"]):
           (r["sessions_reached"], r["sessions_purchased"]) for r in table(db, "chain_daily", segment=None)},
          ref.chain_daily(ss, CHAIN))
    _same({(r["day"], r["step"], r["step_index"], r["device"], r["visitor"], r["segment"]):
           (r["reached"], r["continued"], r["abandoned"], r["abandonment_rate"], r["median_ms_before_abandon"])
           for r in table(db, "checkout_abandonment_daily", segment=None)},
          ref.checkout_abandonment(ss, CHAIN, CHECKOUT))
    _same({(r["day"], r["step"], r["next_step"], r["device"], r["visitor"], r["segment"]):
           (r["transitions"], r["p50_ms"], r["p75_ms"], r["p90_ms"], r["p99_ms"])
           for r in table(db, "step_timing_daily", segment=None)}, ref.step_timing(ss))
    _same({(r["day"], r["step"], r["kind"], r["segment"]):
           (r["sessions_with"], r["abandoned_with"], r["rate_with"], r["rate_without"], r["lift"])
           for r in table(db, "obstacle_impact_daily", segment=None)}, ref.obstacle_impact(ss, CHAIN))
    _same({(r["day"], r["step"], r["kind"], r["segment"]):
           (r["diff"], r["diff_low"], r["diff_high"], r["orders_lost"], r["insufficient"], r["revenue_at_stake"])
           for r in table(db, "obstacle_impact_daily", segment=None)},
          ref.obstacle_cost(ss, CHAIN, min_sample=settings.sites[0].obstacle_min_sample))
    _same({(r["day"], r["landing_path"], r["source"], r["device"], r["segment"]):
           (r["sessions"], r["engaged_7s"], r["bounced"], r["reached_select_in_3_clicks"],
            r["median_s_to_first_interaction"]) for r in table(db, "landing_engagement_daily")},
          ref.landing_engagement(ss))
    want = ref.campaigns(ss)
    got_campaigns = {(r["day"], r["source"], r["medium"], r["campaign"], r["device"]): r
                     for r in table(db, "campaign_daily")}
    assert set(got_campaigns) == set(want)
    for key, (sessions, carts, orders, revenue, left, rate) in want.items():
        r = got_campaigns[key]
        assert (r["sessions"], r["carts"], r["orders"], r["carts_abandoned"]) == (sessions, carts, orders, left), key
        assert _close(r["cart_abandonment"], rate), key
        assert {c: round(v, 6) for c, v in r["revenue"].items() if v} == {
            c: round(v, 6) for c, v in revenue.items() if v}, key
    _same({r["day"]: (r["detail_views"], r["fast_track_views"], r["rate"]) for r in table(db, "fast_track_daily")},
          ref.fast_track(ss))
    _same({(r["day"], int(r["hour"].replace(tzinfo=dt.UTC).timestamp()), r["step"], r["device"]):
           (r["entered"], r["moved"], *r["moved_within"]) for r in table(db, "step_moves_hourly")},
          ref.step_moves(ss, CHAIN, CHECKOUT))


@pytest.mark.parametrize(("k1", "n1", "k2", "n2", "low", "high"), [
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II, method 10
    (56, 70, 48, 80, 0.0524, 0.3339),
    (9, 10, 3, 10, 0.1705, 0.8090),
    (5, 56, 0, 29, -0.0381, 0.1926),
    (0, 10, 0, 20, -0.1611, 0.2775),
    (10, 10, 0, 20, 0.6791, 1.0),
])
def test_the_difference_interval_matches_newcombes_published_cases(
    db: Any, k1: int, n1: int, k2: int, n2: int, low: float, high: float
) -> None:
    assert [round(x, 4) for x in ref.newcombe(k1, n1, k2, n2)] == [low, high]
    got = db.query(f"SELECT chainlens_diff_low({k1}, {n1}, {k2}, {n2}), chainlens_diff_high({k1}, {n1}, {k2}, {n2})")
    assert [round(x, 4) for x in got.result_rows[0]] == [low, high]


def segment_sessions() -> list[ref.Ev]:
    news = "https://shop.example/sale?utm_source=news&utm_medium=email&utm_campaign=spring&email=a@b.example"
    return [
        # Q: decisive, landing from a newsletter, engaged at 3 s, at the cart in 2 minutes after one product.
        ev("Q", 0, "page", "discover", url=news), ev("Q", 0.05, "track", "discover", "engage"),
        ev("Q", 1, "page", "select", url="https://shop.example/product/1", clicks=1),
        ev("Q", 2, "page", "cart", url="https://shop.example/cart", clicks=2),
        ev("Q", 3, "step", "purchase", value=80.0),
        # R: a researcher: two searches and six product pages, from Google Ads, never engaged by hand.
        ev("R", 0, "page", "search", url="https://shop.example/search?q=x&gclid=abc"),
        ev("R", 1, "page", "search", url="https://shop.example/search"),
        *[ev("R", 2 + i, "page", "select", url=f"https://shop.example/product/{i}", clicks=4 + i) for i in range(6)],
        # S then T: one visitor leaves a cart, comes back the next session (returning_to_finish).
        ev("S", 0, "page", "discover", anon="v", ref="https://blog.example/post"),
        ev("S", 10, "page", "cart", anon="v"),
        ev("T", 120, "page", "discover", anon="v"),
        ev("T", 130, "step", "cart", anon="v", value=150.0),
        # U: one page, nothing done: a bounce, direct.
        ev("U", 0, "page", "discover", url="https://shop.example/about"),
    ]


def test_segments_landing_and_campaigns_by_hand(db: Any, tmp_path: Path) -> None:
    reset(db)
    config = make_config(tmp_path, sites=[site_config(segments=[{"name": "big_basket", "where": "cart_value >= 100"}])])
    load(db, from_mapping(config), segment_sessions())
    rollup(db, from_mapping(config), now=NOW)
    got = {r["session_id"]: r for r in table(db, "chain_sessions")}
    assert {k: r["segment"] for k, r in got.items()} == {
        "Q": "decisive", "R": "researcher", "S": "browser", "T": "big_basket", "U": "browser"}
    assert (got["Q"]["source"], got["Q"]["medium"], got["Q"]["campaign"]) == ("news", "email", "spring")
    assert (got["R"]["source"], got["R"]["medium"], got["R"]["click_id"]) == ("google", "cpc", "gclid")
    assert (got["S"]["source"], got["S"]["medium"]) == ("blog.example", "referral")
    assert (got["U"]["source"], got["U"]["medium"], got["U"]["landing_path"]) == ("direct", "(none)", "/about")
    assert got["Q"]["landing_path"] == "/sale" and got["Q"]["first_interaction_ms"] == 3000
    assert got["Q"]["clicks_to_goal"] == 1 and got["R"]["clicks_to_goal"] == 4 and got["U"]["clicks_to_goal"] is None
    assert (got["R"]["product_views"], got["R"]["searches"]) == (6, 2)
    assert got["T"]["earlier_cart"] and not got["S"]["earlier_cart"]

    # A segment's definition changes: re-running over the days re-materializes them.
    config["sites"][0]["segments"] = [{"name": "big_basket", "where": "cart_value >= 200"}]
    rollup(db, from_mapping(config), now=NOW, since=(NOW - dt.timedelta(days=3)).date())
    assert {r["session_id"]: r["segment"] for r in table(db, "chain_sessions")}["T"] == "returning_to_finish"
    cart = {r["segment"]: r for r in table(db, "checkout_abandonment_daily", "step = 'cart' AND device = 'all' "
                                        "AND visitor = 'all'", segment=None)}
    assert (cart["returning_to_finish"]["reached"], cart["returning_to_finish"]["abandoned"]) == (1, 1)
    assert (cart["all"]["reached"], cart["decisive"]["reached"]) == (3, 1) and "big_basket" not in cart

    landing = {(r["landing_path"], r["source"]): r for r in table(
        db, "landing_engagement_daily", "device = 'all' AND segment = 'all'")}
    assert (landing[("/sale", "all")]["engaged_7s"], landing[("/about", "all")]["bounced"]) == (1, 1)
    whole = landing[("all", "all")]
    assert (whole["sessions"], whole["engaged_7s"], whole["bounced"],
            whole["reached_select_in_3_clicks"]) == (5, 1, 1, 1)
    campaigns = {(r["source"], r["medium"], r["campaign"]): r for r in table(db, "campaign_daily", "device = 'all'")}
    spring = campaigns[("news", "email", "spring")]
    assert (spring["sessions"], spring["carts"], spring["orders"], spring["revenue"]) == (1, 1, 1, {"": 80.0})
    assert campaigns[("all", "all", "all")]["cart_abandonment"] == pytest.approx(2 / 3)


def test_a_day_rebuilt_alone_keeps_a_visitors_earlier_cart(db: Any, tmp_path: Path) -> None:
    # docs/metrics.md "Behavior segments": W leaves a cart in the morning, comes back at 23:58 on
    # the order-tracking page and browses on past midnight. The session is that day's (its first
    # event), so rebuilding the day alone, as a forget does, must still see the morning's cart.
    reset(db)
    settings = site_settings(tmp_path)
    day = dt.date(2026, 3, 8)
    midnight = int(dt.datetime(2026, 3, 8, tzinfo=dt.UTC).timestamp() * 1000)
    load(db, settings, [
        ev("W1", 600, "page", "discover", anon="w", base=midnight),
        ev("W1", 610, "page", "cart", anon="w", base=midnight),
        ev("W2", 1438, "page", "tracking_viewed", anon="w", base=midnight),
        ev("W2", 1445, "page", "select", anon="w", base=midnight),
    ])

    def sessions() -> dict[str, tuple[dt.date, bool, str]]:
        return {r["session_id"]: (r["day"], r["earlier_cart"], r["segment"]) for r in table(db, "chain_sessions")}

    rollup(db, settings, now=NOW)
    whole = sessions()
    assert whole == {"W1": (day, False, "browser"), "W2": (day, True, "returning_to_finish")}
    rebuild_days(db, settings.sites[0], [day], timeout_s=settings.rollup.session_timeout_s, now=NOW)
    assert sessions() == whole


def test_a_session_started_at_the_same_time_is_not_earlier(db: Any, tmp_path: Path) -> None:
    # docs/metrics.md "Behavior segments": an earlier session started before this one. X1 and X2,
    # one visitor's, start at the same millisecond (two tabs); X1 leaves a cart. Neither is the
    # other's earlier session, whichever order the store meets them in.
    reset(db)
    settings = site_settings(tmp_path)
    load(db, settings, [
        ev("X1", 0, "page", "discover", anon="x"), ev("X1", 5, "page", "cart", anon="x"),
        ev("X2", 0, "step", "discover", anon="x"),
    ])
    rollup(db, settings, now=NOW)
    assert {r["session_id"]: r["earlier_cart"] for r in table(db, "chain_sessions")} == {"X1": False, "X2": False}

def test_money_is_summed_to_the_cent_in_every_table_and_figure(db: Any, tmp_path: Path) -> None:
    """In floats 0.1 + 0.2 is 0.30000000000000004, and the last bits of a longer sum depend on the
    order the engine adds in; a sum of money is rounded to the cent (docs/metrics.md, "Orders and
    revenue"), so it is 0.3 in every table and figure, and the same in every pass."""
    reset(db)
    settings = from_mapping(make_config(tmp_path, sites=[site_config(intervene={"steps": ["checkout.shipping"]})]))
    landing = "https://shop.example/?utm_source=news&utm_medium=email&utm_campaign=spring"
    events = []
    for sid, price in (("P", 0.1), ("Q", 0.2)):  # one visitor, two orders, each after an accepted offer
        events += [ev(sid, 0, "page", "discover", url=landing, anon="v-1"), ev(sid, 1, "page", "cart", anon="v-1"),
                   ev(sid, 2, "page", "checkout.shipping", anon="v-1"),
                   ev(sid, 3, "track", "checkout.shipping", "intervention", anon="v-1",
                      props={"trigger": "exit_intent", "arm": "treatment"}),
                   ev(sid, 4, "track", "checkout.shipping", "intervention_outcome", anon="v-1",
                      props={"outcome": "accepted", "offer": "FREESHIP", "cost": price}),
                   ev(sid, 5, "step", "purchase", value=price, order_id="o-" + sid, anon="v-1")]
    load(db, settings, events)
    rollup(db, settings, now=NOW)
    spring = table(db, "campaign_daily", "source = 'news' AND campaign = 'spring' AND device = 'all'")
    assert [r["revenue"] for r in spring] == [{"": 0.3}]
    assert [r["revenue"] for r in table(db, "customers")] == [{"": 0.3}]
    treated = table(db, "intervention_daily", "arm = 'treatment' AND trigger = 'all' AND device = 'all'")
    assert [(r["revenue"], r["offer_cost"]) for r in treated] == [(0.3, 0.3)]
    figures = report_range(db, settings.sites[0], None, None)
    assert [r["revenue"] for r in figures["campaigns"] if r["source"] == "news"] == [{"": 0.3}]
    assert [r["offer_cost"] for r in figures["interventions"] if r["trigger"] == "all"] == [0.3]
    assert figures["headline"]["revenue"] == 0.3


def test_a_segment_the_store_cannot_type_stops_the_rollup_naming_it(db: Any, tmp_path: Path) -> None:
    reset(db)
    config = make_config(tmp_path, sites=[site_config(segments=[{"name": "odd", "where": "lower(cart_value) = 1"}])])
    with pytest.raises(ConfigError, match="odd"):
        rollup(db, from_mapping(config), now=NOW)


def load_s2s(client: Any, settings: Settings, raws: list[dict[str, Any]], *, received_ms: int = NOW_MS) -> None:
    """Events as the store's back office sends them to /s2s: by order id, no session."""
    site = settings.sites[0]
    rows = [validate_event(raw, site=site, client=Client(), received_ms=received_ms, sent_at=None, server=True)
            for raw in raws]
    store.insert_events(client, rows_body(rows), token=str(uuid.uuid4()))


def s2s(order: str, hours: float, step: str = "", **kw: Any) -> dict[str, Any]:
    kind = "track" if kw.get("name") == "feedback" else "step"
    return {"id": str(uuid.uuid4()), "type": kind, "step": step or None, "order_id": order,
            "ts": NOW_MS - 80 * H + int(hours * H), **kw}


def test_after_the_purchase_by_hand(db: Any, tmp_path: Path) -> None:
    reset(db)
    settings = site_settings(tmp_path)
    base = NOW_MS - 80 * H  # purchases 80 hours ago; deliveries come later, out of order
    promise = dt.datetime.fromtimestamp((base + 48 * H) / 1000, dt.UTC).isoformat()
    load(db, settings, [
        ev("P1", 0, "page", "cart", base=base, device="mobile"),
        ev("P1", 1, "obstacle", "cart", "shipping_cost_shown", base=base, device="mobile"),
        ev("P1", 2, "step", "purchase", base=base, device="mobile", value=50.0, order_id="o-1"),
        ev("P2", 0, "page", "cart", base=base), ev("P2", 2, "step", "purchase", base=base, value=20.0, order_id="o-2"),
        ev("P3", 0, "page", "cart", base=base), ev("P3", 2, "step", "purchase", base=base, value=30.0, order_id="o-3"),
        # o-2's buyer opens the tracking page, which names no order: linked by the visitor
        ev("P2", 600, "page", "tracking_viewed", base=base),
    ])
    load_s2s(db, settings, [
        s2s("o-1", 50, "delivered"),  # delivered before "shipped" arrives, and after the promise
        s2s("o-1", 20, "shipped", props={"carrier": "DHL", "promised_by": promise}),
        s2s("o-2", 10, "shipped", props={"carrier": "UPS", "promised_by": promise}),
        s2s("o-2", 30, "delivered"),
        s2s("o-3", 12, "shipped"), s2s("o-3", 36, "returned", props={"reason": "too small"}),
        s2s("o-9", 30, "delivered"),  # an order whose purchase has not arrived yet
        s2s("o-1", 60, name="feedback", props={"score": 3, "asked_at": "delivery"}),
        s2s("o-2", 61, name="feedback", props={"score": 10, "asked_at": "delivery"}),
    ])
    rollup(db, settings, now=NOW)
    orders = {r["order_id"]: r for r in table(db, "chain_orders")}
    assert set(orders) == {"o-1", "o-2", "o-3"}  # o-9 waits for its purchase
    assert orders["o-1"]["device"] == "mobile" and orders["o-1"]["met_obstacle"] and orders["o-1"]["on_time"] is False
    assert (orders["o-1"]["hours_to_ship"], orders["o-1"]["hours_to_deliver"]) == pytest.approx((20 - 2 / 60,
                                                                                                 50 - 2 / 60))
    assert orders["o-2"]["on_time"] is True and orders["o-2"]["tracking_viewed"] and orders["o-2"]["carrier"] == "UPS"
    assert orders["o-3"]["returned"] and orders["o-3"]["return_reason"] == "too small"
    assert orders["o-3"]["on_time"] is None  # no promise, no delivery
    day = orders["o-1"]["day"]
    whole = table(db, "fulfillment_daily", "device = 'all' AND segment = 'all'")[0]
    assert (whole["day"], whole["orders"], whole["shipped"], whole["delivered"]) == (day, 3, 3, 2)
    assert whole["p50_hours_to_ship"] == pytest.approx(12 - 2 / 60)
    assert (whole["with_promise"], whole["on_time"], whole["on_time_share"]) == (2, 1, 0.5)
    assert (whole["tracking_viewed"], whole["returned"]) == (1, 1)
    assert whole["return_reasons"] == [{"reason": "too small", "returns": 1}]
    nps = {r["link"]: r for r in table(db, "satisfaction_daily", "asked_at = 'all' AND device = 'all' "
                                                                  "AND segment = 'all'")}
    assert (nps["all"]["responses"], nps["all"]["nps"]) == (2, 0)
    assert (nps["late"]["nps"], nps["on_time"]["nps"]) == (-100, 100)
    assert (nps["met_obstacle"]["nps"], nps["no_obstacle"]["nps"]) == (-100, 100)
    assert nps["all"]["nps_low"] < -70 and nps["all"]["nps_high"] > 70  # two answers say little
    assert -100 < nps["late"]["nps_low"] < nps["late"]["nps_high"] < 100  # never zero width, never past 100

    # o-9's purchase arrives a day later, and o-2 is returned: only their purchase days are rebuilt.
    later = NOW + dt.timedelta(hours=1)
    load(db, settings, [ev("P9", 0, "step", "purchase", base=base - 30 * H, value=9.0, order_id="o-9")],
         received_ms=NOW_MS + 30 * M)
    load_s2s(db, settings, [s2s("o-2", 41, "returned")], received_ms=NOW_MS + 30 * M)
    result = rollup(db, settings, now=later)[0]
    orders = {r["order_id"]: r for r in table(db, "chain_orders")}
    assert orders["o-9"]["delivered_at"] is not None and orders["o-2"]["return_reason"] == "(not given)"
    assert result.table_seconds["chain_orders"] > 0
    assert {r["day"] for r in table(db, "chain_orders")} == {day, orders["o-9"]["day"]}


@st.composite
def order_sets(draw: Any) -> tuple[list[ref.Ev], list[dict[str, Any]]]:
    """Purchase sessions (some with obstacles or a page answer), and what the back office reports
    about their orders: any subset, in any order, some about orders whose purchase never came."""
    browser: list[ref.Ev] = []
    office: list[dict[str, Any]] = []
    for n in range(draw(st.integers(1, 8))):
        sid, oid = f"p{n}", f"o-{n}"
        bought = NOW_MS - draw(st.integers(50, 300)) * H + draw(st.integers(0, 3_599_999))
        device = draw(st.sampled_from(["desktop", "mobile"]))
        if draw(st.integers(0, 5)):  # the purchase arrived
            browser.append(ref.Ev(session=sid, ts=bought - 60_000, type="page", step="cart", device=device,
                                  id=str(uuid.uuid4())))
            if draw(st.booleans()):
                browser.append(ref.Ev(session=sid, ts=bought - 30_000, type="obstacle", step="cart",
                                      name="shipping_cost_shown", device=device, id=str(uuid.uuid4())))
            purchase = ref.Ev(session=sid, ts=bought, type="step", step="purchase", device=device,
                              id=str(uuid.uuid4()), value=25.0, order_id=oid)
            browser += [purchase] * draw(st.integers(1, 2))
            if draw(st.booleans()):
                browser.append(ref.Ev(session=sid, ts=bought + 1000, type="track", name="feedback",
                                      props={"score": str(draw(st.integers(0, 10)))}, device=device,
                                      id=str(uuid.uuid4())))
        promise = draw(st.sampled_from([None, 24, 48, 96]))
        for step in draw(st.lists(st.sampled_from(["shipped", "delivered", "returned", "tracking_viewed"]),
                                  max_size=4, unique=True)):
            at = min(bought + draw(st.integers(1, 120)) * H + draw(st.integers(0, 999)), NOW_MS - 1000)
            props: dict[str, Any] = {}
            if step == "shipped" and promise:
                props = {"carrier": draw(st.sampled_from(["DHL", "UPS"])),
                         "promised_by": dt.datetime.fromtimestamp((bought + promise * H) / 1000, dt.UTC).isoformat()}
            if step == "returned" and draw(st.booleans()):
                props = {"reason": draw(st.sampled_from(["too small", "broken"]))}
            office.append({"id": str(uuid.uuid4()), "type": "step", "step": step, "order_id": oid, "ts": at,
                           "props": props or None})
        if draw(st.booleans()):
            office.append({"id": str(uuid.uuid4()), "type": "track", "name": "feedback", "order_id": oid,
                           "ts": min(bought + draw(st.integers(1, 200)) * H, NOW_MS - 1000),
                           "props": {"score": draw(st.integers(0, 10)),
                                     "asked_at": draw(st.sampled_from(["delivery", "checkout"]))}})
    return browser, office


@pytest.mark.slow
@hsettings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(sets=order_sets(), tz=st.sampled_from(["UTC", "Asia/Kolkata"]))
def test_after_the_purchase_matches_the_definitions(
    db: Any, tmp_path: Path, sets: tuple[list[ref.Ev], list[dict[str, Any]]], tz: str
) -> None:
    reset(db)
    browser, office = sets
    settings = site_settings(tmp_path, tz)
    load(db, settings, browser)
    load_s2s(db, settings, office)
    rollup(db, settings, now=NOW)
    ss = ref.sessions(browser, chain=CHAIN, tz=tz, now_ms=NOW_MS, timeout_s=settings.rollup.session_timeout_s)
    ref.segment(ss, CHAIN)
    as_events = browser + [ref.Ev(session="order:" + o["order_id"], ts=o["ts"], type=o["type"],
                                  step=o.get("step") or "", name=o.get("name") or "", id=o["id"],
                                  order_id=o["order_id"], props={k: str(v) for k, v in (o["props"] or {}).items()})
                           for o in office]
    for e in as_events:  # as the collector stores them: promises as UTC instants
        if "promised_by" in e.props:
            e.props["promised_by"] = dt.datetime.fromisoformat(e.props["promised_by"]).isoformat()
    want = ref.orders(as_events, ss, chain=CHAIN, tz=tz)
    got = {r["order_id"]: r for r in table(db, "chain_orders")}
    assert set(got) == set(want)
    for oid, o in want.items():
        r = got[oid]
        assert (r["day"], r["device"], r["segment"], r["met_obstacle"], r["on_time"], r["tracking_viewed"],
                r["returned"], r["return_reason"]) == (o.day, o.device, o.segment, o.met_obstacle, o.on_time,
                                                       o.tracking_viewed, o.returned, o.return_reason), oid
        assert _close(r["hours_to_ship"], o.hours_to_ship) and _close(r["hours_to_deliver"], o.hours_to_deliver)
    _same({(r["day"], r["device"], r["segment"]):
           (r["orders"], r["shipped"], r["delivered"], r["p50_hours_to_ship"], r["p90_hours_to_ship"],
            r["p50_hours_to_deliver"], r["p90_hours_to_deliver"], r["with_promise"], r["on_time"],
            r["tracking_viewed"], r["returned"]) for r in table(db, "fulfillment_daily")}, ref.fulfillment(want))
    _same({(r["day"], r["asked_at"], r["device"], r["segment"], r["link"]):
           (r["responses"], r["promoters"], r["passives"], r["detractors"], r["nps"], r["nps_low"], r["nps_high"])
           for r in table(db, "satisfaction_daily")}, ref.satisfaction(as_events, want, ss, tz=tz))


def test_answers_given_while_their_session_is_open_are_linked_by_a_later_pass(db: Any, tmp_path: Path) -> None:
    """Scheduled passes only: the first runs while the sessions are open (their answers arrive then),
    a later one after they close. The tables then equal a recompute from scratch."""
    reset(db)
    settings = site_settings(tmp_path)
    base = NOW_MS - 2 * H  # the sessions start two hours before NOW and run until a few minutes before it
    shoppers = []
    for i in range(6):
        sid = f"A{i}"
        shoppers += [ev(sid, 0, "page", "cart", base=base, device="mobile" if i % 2 else "desktop"),
                     *([ev(sid, 1, "obstacle", "cart", "shipping_cost_shown", base=base)] if i < 3 else []),
                     ev(sid, 2, "step", "purchase", base=base, value=10.0 + i, order_id=f"o-{i}"),
                     ev(sid, 3, "track", name="feedback", base=base, props={"score": 2 * i, "asked_at": "checkout"}),
                     ev(sid, 110, "page", "discover", base=base)]  # still browsing at NOW - 10 min
    open_at = dt.datetime.fromtimestamp((base + 115 * M) / 1000, dt.UTC)
    load(db, settings, shoppers, received_ms=int(open_at.timestamp() * 1000))
    first = rollup(db, settings, now=open_at)  # every session still open
    assert first[0].sessions == 0 and table(db, "satisfaction_daily", "link = 'met_obstacle'") == []
    later = open_at + dt.timedelta(hours=1)  # nothing new arrived; the sessions have closed
    rollup(db, settings, now=later)
    scheduled = {t: sorted(map(repr, table(db, t))) for t in ("satisfaction_daily", "chain_orders")}
    links = {r["link"]: r["responses"] for r in table(db, "satisfaction_daily",
                                                      "asked_at = 'all' AND device = 'all' AND segment = 'all'")}
    assert links == {"all": 6, "met_obstacle": 3, "no_obstacle": 3}
    rollup(db, settings, now=later, since=(NOW - dt.timedelta(days=2)).date())
    assert {t: sorted(map(repr, table(db, t))) for t in scheduled} == scheduled


def test_a_session_of_after_purchase_pages_only_is_a_session(db: Any, tmp_path: Path) -> None:
    """A buyer opens the order's tracking page from the confirmation e-mail, days later, and answers
    the survey there: a session of its own, with its device, its page view and its answer."""
    reset(db)
    settings = site_settings(tmp_path)
    base = NOW_MS - 30 * H
    load(db, settings, [
        ev("B", 0, "page", "cart", base=base), ev("B", 2, "step", "purchase", base=base, value=20.0, order_id="o-1"),
        ev("T", 600, "page", "tracking_viewed", base=base, device="mobile", url="https://shop.example/orders/o-1"),
        ev("T", 601, "track", name="feedback", base=base, device="mobile", props={"score": 9, "asked_at": "tracking"}),
    ])
    rollup(db, settings, now=NOW)
    sessions = {r["session_id"]: r for r in table(db, "chain_sessions")}
    assert set(sessions) == {"B", "T"}
    t = sessions["T"]
    assert (t["device"], t["pages"], t["furthest_index"], t["purchased"], t["landing_path"]) == (
        "mobile", 1, 0, False, "/orders/o-1")
    answers = table(db, "satisfaction_daily", "asked_at = 'all' AND link = 'all' AND segment = 'all'")
    assert {(r["device"], r["responses"]) for r in answers} == {("all", 1), ("mobile", 1)}


def test_a_report_dated_before_its_purchase_is_kept_and_flagged(db: Any, tmp_path: Path) -> None:
    reset(db)
    settings = site_settings(tmp_path)
    base = NOW_MS - 80 * H
    load(db, settings, [ev("P", 0, "page", "cart", base=base),
                        ev("P", 2, "step", "purchase", base=base, value=20.0, order_id="o-1")])
    load_s2s(db, settings, [s2s("o-1", -5, "shipped"), s2s("o-1", 30, "delivered")])  # shipped "before" it
    rollup(db, settings, now=NOW)
    (order,) = table(db, "chain_orders")
    assert order["dated_before_purchase"] is True and order["shipped_at"] is not None
    assert order["hours_to_ship"] is None and order["hours_to_deliver"] == pytest.approx(30 - 2 / 60)
