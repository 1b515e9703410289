"""customers and repeat_purchase_daily against orders counted by hand (docs/metrics.md,
"Customers and repeat purchases"): who a customer is across devices, shared devices and a later
sign-in; which orders are observable for 30 and 90 days; a whole rebuild at every pass."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from chainlens.core.fields import Client
from chainlens.core.rows import validate_event
from chainlens.core.spoolfile import rows_body
from chainlens.demo.returns import link_returns
from chainlens.demo.shoppers import ShopperModel, aftercare
from ingestion import store
from ingestion.figures import parameters, rows
from ingestion.imports import import_lines
from ingestion.rollup import rollup
from tests.test_rollups import NOW, NOW_MS, reset, site_settings, table

D = 86_400_000


def session(sid: str, aid: str, day: int, *, order: str = "", uid: str = "") -> list[dict[str, Any]]:
    """A session `day` days before NOW: the cart, and a purchase of 40 EUR when `order` is set."""
    t = NOW_MS + day * D
    out = [{"id": str(uuid.uuid4()), "type": "page", "step": "cart", "ts": t, "sid": sid, "aid": aid, "sn": 1}]
    if uid:
        out.append({"id": str(uuid.uuid4()), "type": "identify", "ts": t + 1000, "sid": sid, "aid": aid, "sn": 1,
                    "uid": uid})
    if order:
        out.append({"id": str(uuid.uuid4()), "type": "step", "step": "purchase", "ts": t + 60_000, "sid": sid,
                    "aid": aid, "sn": 1, "order_id": order, "value": 40.0, "currency": "EUR"})
    return out


def delivery(order: str, day: int, *, late: bool) -> list[dict[str, Any]]:
    t = NOW_MS + day * D
    promised = t + 3 * D
    return [{"id": str(uuid.uuid4()), "type": "step", "step": "shipped", "order_id": order, "ts": t + D,
             "props": {"promised_by": promised}},
            {"id": str(uuid.uuid4()), "type": "step", "step": "delivered", "order_id": order,
             "ts": promised + (D if late else -D)}]


def load_raw(client: Any, settings: Any, raws: list[dict[str, Any]], *, server: bool = False,
             received_ms: int = NOW_MS) -> None:
    site = settings.sites[0]
    rows = [validate_event(r, site=site, client=Client(), received_ms=received_ms, sent_at=None, age_limit=False,
                           server=server) for r in raws]
    store.insert_events(client, rows_body(rows), token=str(uuid.uuid4()))


def history() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    browser = [
        *session("a1", "va1", -120, order="A1", uid="u-alice"),  # Alice on her laptop
        *session("a2", "va2", -100, order="A2", uid="u-alice"),  # and on her phone: one customer
        *session("b1", "vb", -110, order="B1"), *session("b2", "vb", -40, order="B2"),  # Bob, never signed in
        *session("b3", "vb", -20, order="B3"),
        *session("c1", "vc", -115, order="C1"),  # Carol buys before she signs in, 65 days later
        *session("c2", "vc", -50, order="C2", uid="u-carol"),
        *session("d1", "vs", -108, order="D1", uid="u-dan"),  # a shared device: Dan, Eve, and nobody
        *session("e1", "vs", -105, order="E1", uid="u-eve"),
        *session("s1", "vs", -104, order="S1"),
    ]
    return browser, [*delivery("A1", -120, late=True), *delivery("B1", -110, late=False)]


@pytest.mark.slow  # a rollup of the history's months, day by day: `make test`
def test_customers_and_repeat_purchases_by_hand(db: Any, tmp_path: Path) -> None:
    reset(db)
    settings = site_settings(tmp_path)
    browser, reports = history()
    load_raw(db, settings, browser)
    load_raw(db, settings, reports, server=True)
    rollup(db, settings, now=NOW)

    customers = {r["customer"]: (r["orders"], r["order_ids"], r["revenue"]) for r in table(db, "customers")}
    assert customers == {"u-alice": (2, ["A1", "A2"], {"EUR": 80.0}), "vb": (3, ["B1", "B2", "B3"], {"EUR": 120.0}),
                         "u-carol": (2, ["C1", "C2"], {"EUR": 80.0}), "u-dan": (1, ["D1"], {"EUR": 40.0}),
                         "u-eve": (1, ["E1"], {"EUR": 40.0}), "vs": (1, ["S1"], {"EUR": 40.0})}

    def totals(link: str) -> tuple[int, ...]:
        rows = table(db, "repeat_purchase_daily", f"link = '{link}' AND device = 'all'")
        keys = ("orders", "observable_30d", "repeat_30d", "observable_90d", "repeat_90d", "observable_90d_others",
                "repeat_90d_others")
        return tuple(sum(r[k] for r in rows) for k in keys)

    # 10 orders; B3 is 20 days old (not observable for 30 days); B2 and C2 not for 90. Within 30
    # days A1 (A2 after 20) and B2 (B3 after 20) repeat; within 90, A1, B1 (70) and C1 (65).
    assert totals("all") == (10, 9, 2, 7, 3, 0, 0)
    assert totals("late") == (1, 1, 1, 1, 1, 1, 1)  # A1, against B1 delivered on time
    assert totals("on_time") == (1, 1, 0, 1, 1, 1, 1)
    (late,) = table(db, "repeat_purchase_daily", "link = 'late' AND device = 'all' AND orders > 0")
    assert late["diff_90d"] is None  # on its day, no order on time to compare with

    # A new order re-opens its customer's earlier one: Bob's B3 now has a successor within 30 days.
    load_raw(db, settings, session("b4", "vb", -5, order="B4"), received_ms=NOW_MS + 500)
    rollup(db, settings, now=NOW + dt.timedelta(seconds=1))
    assert totals("all")[:3] == (11, 9, 2)
    rollup(db, settings, now=NOW + dt.timedelta(days=30))  # B3 and B4 now observable for 30 days
    assert totals("all")[:3] == (11, 11, 3)


@pytest.mark.slow  # two months of the shopper model, rolled up: `make test`, not the fast loop
def test_the_demo_model_brings_fewer_buyers_back_after_a_late_delivery_or_a_bad_answer(
        db: Any, tmp_path: Path) -> None:
    reset(db)
    settings = site_settings(tmp_path)
    model = ShopperModel(seed=21, act=True)
    sessions = list(model.sessions(start_ms=NOW_MS - 160 * D, end_ms=NOW_MS - 95 * D, count=16_000))
    rng = random.Random(21)
    reports = [e for s in sessions for e in aftercare(s, rng, now_ms=NOW_MS)]
    assert link_returns(sessions, reports, seed=21) > 100
    lines = [orjson.dumps({**e, "ua": s.user_agent}) for s in sessions for e in s.events]
    import_lines(db, lines + [orjson.dumps(e) for e in reports], site=settings.sites[0])
    rollup(db, settings, now=NOW)
    figures = {r["link"]: r for r in rows(db, "repeat", parameters(
        settings.sites[0], start=(NOW - dt.timedelta(days=170)).date(), end=NOW.date()))}
    for bad in ("late", "detractor"):
        assert figures[bad]["observable_90d"] >= 30 and figures[bad]["diff_high"] < 0, figures[bad]
    assert figures["promoter"]["diff_low"] > 0
    # every order of the window was observed for its whole 90 days
    assert figures["all"]["observable_90d"] == figures["all"]["orders"]


@st.composite
def buyers(draw: Any) -> list[dict[str, Any]]:
    """Orders of a few shoppers over 200 days: devices (visitor ids) shared or not, sign-ins (user
    ids) on some sessions, late and on-time deliveries."""
    raws: list[dict[str, Any]] = []
    for n in range(draw(st.integers(1, 8))):
        aid = draw(st.sampled_from(["v1", "v2", "v3", "v4", "v5"]))
        uid = draw(st.sampled_from(["", "", "u1", "u2", "u3"]))
        day = draw(st.sampled_from([-5, -20, -35, -60, -95, -100, -130]))  # a few days: quick rollups
        order = f"O{n}" if draw(st.integers(0, 4)) else ""
        raws += session(f"s{n}", aid, day, order=order, uid=uid)
        if order and draw(st.booleans()):
            raws += delivery(order, day, late=draw(st.booleans()))
    return raws


def expected(raws: list[dict[str, Any]]) -> tuple[dict[str, list[str]], dict[str, tuple[int, ...]]]:
    """customers' order ids and repeat_purchase_daily's sums per link, from the definitions."""
    users_of_visitor: dict[str, set[str]] = {}
    session_user: dict[str, str] = {}
    for r in raws:
        if r.get("uid"):
            session_user[r["sid"]] = r["uid"]
            users_of_visitor.setdefault(r["aid"], set()).add(r["uid"])
    late: dict[str, bool] = {}
    promised: dict[str, int] = {}
    for r in raws:
        if r.get("step") == "shipped":
            promised[r["order_id"]] = r["props"]["promised_by"]
        elif r.get("step") == "delivered":
            late[r["order_id"]] = r["ts"] > promised[r["order_id"]]
    orders = []
    for r in raws:
        if r.get("step") == "purchase" and r.get("sid"):
            one = users_of_visitor.get(r["aid"], set())
            customer = session_user.get(r["sid"]) or (next(iter(one)) if len(one) == 1 else r["aid"])
            orders.append((customer, r["ts"], r["order_id"]))
    customers: dict[str, list[str]] = {}
    for customer, _, order in orders:
        customers.setdefault(customer, []).append(order)
    horizon = NOW_MS - 1800 * 1000
    sums: dict[str, list[int]] = {}
    for customer, ts, order in orders:
        later = sorted(t for c, t, o in orders if c == customer and (t, o) > (ts, order))
        links = ["all"] + ([("late" if late[order] else "on_time")] if order in late else [])
        for link in links:
            row = sums.setdefault(link, [0] * 5)
            seen30, seen90 = ts + 30 * D <= horizon, ts + 90 * D <= horizon
            row[0] += 1
            row[1] += seen30
            row[2] += seen30 and bool(later) and later[0] <= ts + 30 * D
            row[3] += seen90
            row[4] += seen90 and bool(later) and later[0] <= ts + 90 * D
    return ({c: sorted(o) for c, o in customers.items()}, {k: tuple(v) for k, v in sums.items()})


@pytest.mark.slow  # the property runs: `make test`, not the fast loop
@hsettings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(raws=buyers())
def test_customers_and_repeats_match_the_definitions(db: Any, tmp_path: Path, raws: list[dict[str, Any]]) -> None:
    reset(db)
    settings = site_settings(tmp_path)
    load_raw(db, settings, [r for r in raws if r.get("sid")])
    if any(not r.get("sid") for r in raws):
        load_raw(db, settings, [r for r in raws if not r.get("sid")], server=True)
    rollup(db, settings, now=NOW, since=(NOW - dt.timedelta(days=140)).date())  # the days that hold events
    want_customers, want_sums = expected(raws)
    assert {r["customer"]: r["order_ids"] for r in table(db, "customers")} == want_customers
    keys = ("orders", "observable_30d", "repeat_30d", "observable_90d", "repeat_90d")
    got: dict[str, list[int]] = {}
    for r in table(db, "repeat_purchase_daily", "device = 'all'"):
        row = got.setdefault(r["link"], [0] * 5)
        for i, k in enumerate(keys):
            row[i] += r[k]
    assert {k: tuple(v) for k, v in got.items() if v[0] and k in ("all", "late", "on_time")} == want_sums
