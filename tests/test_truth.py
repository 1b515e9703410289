"""One truth on every surface: a store whose figures are known by construction, driven through the
real collector, then read back from the dashboard, the demo's report queries and the cookbook."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
import pytest

from chainlens.one_process import single_process_app
from chainlens.store_access import site_parameters
from collector.app import SERVER_OPTIONS
from collector.dashboard import money, pct
from ingestion.figures import parameters, rows
from ingestion.rollup import rollup
from ingestion.runner import StoreRunner
from tests.conftest import BROWSER_UA, MOBILE_UA, ORIGIN, wait_for
from tests.test_queries import QUERIES

CHECKOUT = ["checkout.info", "checkout.shipping", "checkout.payment", "checkout.review"]
# Per device: shoppers who buy at once (decisive), who compare five products and leave at the first
# checkout step (researcher), who look at the home page only, and who read a page that is no chain
# step (both browser): a session, though it reached no step.
MIX = {"desktop": {"buyer": 4, "leaver": 3, "browser": 5, "reader": 2},
       "mobile": {"buyer": 2, "leaver": 4, "browser": 6, "reader": 1}}
SEGMENT = {"buyer": "decisive", "leaver": "researcher", "browser": "browser", "reader": "browser"}


@dataclass
class Truth:
    sessions: int = 0
    orders: int = 0
    revenue: float = 0.0
    carts: int = 0
    detail_views: int = 0
    fast_track_views: int = 0

    def add(self, kind: str, value: float) -> None:
        self.sessions += 1
        self.orders += kind == "buyer"
        self.revenue = round(self.revenue + (value if kind == "buyer" else 0), 2)
        self.carts += kind in ("buyer", "leaver")
        self.detail_views += {"buyer": 1, "leaver": 5}.get(kind, 0)
        self.fast_track_views += kind == "buyer"


def shopper(kind: str, start_ms: int, value: float) -> list[dict[str, Any]]:
    sid, aid = str(uuid.uuid4()), str(uuid.uuid4())
    if kind == "reader":
        return [{"id": str(uuid.uuid4()), "type": "page", "ts": start_ms, "sid": sid, "aid": aid, "sn": 1,
                 "url": "https://shop.example/about-us"}]
    steps: list[tuple[str, dict[str, Any]]] = [("discover", {})]
    if kind == "buyer":
        steps += [("select", {"in_stock": True, "ship_days": 1}), ("cart", {}), *((s, {}) for s in CHECKOUT),
                  ("purchase", {"value": f"{value:,.2f}", "currency": "EUR", "order_id": sid[:8]})]
    elif kind == "leaver":
        steps += [("search", {}), *(("select", {"in_stock": False, "ship_days": 5}) for _ in range(5)),
                  ("cart", {}), ("checkout.info", {})]
    gap = 20_000 if kind == "buyer" else 90_000  # a buyer is at the cart within a minute
    return [{"id": str(uuid.uuid4()), "type": "step", "ts": start_ms + i * gap, "sid": sid, "aid": aid, "sn": 1,
             "step": step, "props": props or None} for i, (step, props) in enumerate(steps)]


@pytest.fixture
async def store(aiohttp_client: Any, settings: Any) -> Any:
    runner = StoreRunner(settings.store.dsn)
    client = await aiohttp_client(single_process_app(settings, runner=runner), server_kwargs=SERVER_OPTIONS)
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2)  # whole sessions inside one UTC day
    start = int(dt.datetime.combine(day, dt.time(9), dt.UTC).timestamp() * 1000)
    truth: dict[tuple[str, str], Truth] = {}
    n = 0
    for device, kinds in MIX.items():
        for kind, count in kinds.items():
            for _ in range(count):
                n += 1
                value = 10.1 * n + 0.05  # cents that float sums get wrong unless summed with care
                for key in ((device, "all"), ("all", "all"), (device, SEGMENT[kind]), ("all", SEGMENT[kind])):
                    truth.setdefault(key, Truth()).add(kind, value)
                body = orjson.dumps({"site": "demo", "sent_at": int(time.time() * 1000),
                                     "events": shopper(kind, start + n * 600_000, value)})
                ua = MOBILE_UA if device == "mobile" else BROWSER_UA
                resp = await client.post("/e", data=body, headers={"Content-Type": "text/plain", "Origin": ORIGIN,
                                                                   "User-Agent": ua})
                assert resp.status == 202 and (await resp.json())["rejected"] == 0

    async def loaded() -> bool:
        return await runner.call(lambda c: c.query("SELECT uniqExact(session_id) FROM events").result_rows[0][0]) == n
    await wait_for(loaded)
    await runner.call(lambda c: rollup(c, settings))
    return client, runner, settings.sites[0], day, truth  # the app's cleanup closes the runner


FILTERS = [("all", "all"), ("mobile", "all"), ("all", "researcher"), ("desktop", "decisive")]


def shown(html: str, element: str) -> str:
    found = re.search(rf'id="{element}">([^<]*)<', html)
    assert found, element
    return found.group(1)


async def test_every_dashboard_figure_and_report_line_is_the_truth(store: Any) -> None:
    for device, segment in FILTERS:  # one store for all four views
        await shows_the_truth(store, device, segment)


async def shows_the_truth(store: Any, device: str, segment: str) -> None:
    client, runner, site, day, truth = store
    t, view = truth[(device, segment)], f"device={device}, segment={segment}"
    page = await client.get(f"/dashboard?site=demo&from={day}&to={day}&device={device}&segment={segment}")
    html = await page.text()
    assert page.status == 200, view
    surfaces = {  # the dashboard's figures, each with what the truth says it must show
        "sessions": str(t.sessions), "orders": str(t.orders), "revenue": money(t.revenue or 0.0, "EUR" if t.orders
                                                                                 else ""),
        "conversion": pct(t.orders / t.sessions), "cart-abandonment": pct(1 - t.orders / t.carts if t.carts
                                                                          else None),
        "fast-track": pct(t.fast_track_views / t.detail_views if t.detail_views else None),
        "aov": money(round(t.revenue / t.orders, 2) if t.orders else None, "EUR" if t.orders else ""),
    }
    assert {name: shown(html, name) for name in surfaces} == surfaces, view
    # The same figures as the demo's report reads them (ingestion/queries/).
    p = parameters(site, start=day, end=day, device=device, segment=segment)
    headline, cart, fast = [await runner.call(lambda c, name=name: rows(c, name, p)[0])
                            for name in ("headline", "cart", "fast_track")]
    assert (headline["sessions"], headline["orders"], headline["revenue"]) == (t.sessions, t.orders, t.revenue), view
    assert (fast["detail_views"], fast["fast_track_views"]) == (t.detail_views, t.fast_track_views), view
    if segment == "all":  # the chain tables hold device totals over every segment
        assert (cart["carts"], cart["bought"]) == (t.carts, t.orders), view


async def test_the_cookbook_tells_the_same_truth(store: Any) -> None:
    client, runner, site, day, truth = store
    t = truth[("all", "all")]

    async def ask(number: int) -> list[dict[str, Any]]:
        query = QUERIES[number - 1]
        result = await runner.call(lambda c: c.query(query, parameters=site_parameters(site, query)))
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    q1 = {r["step"]: r for r in await ask(1)}  # checkout abandonment this week
    assert (q1["checkout.info"]["shoppers_reached"], q1["checkout.info"]["shoppers_lost"]) == (
        t.carts, t.carts - t.orders)
    q7 = {r["step"]: r for r in await ask(7)}  # the funnel
    readers = sum(kinds["reader"] for kinds in MIX.values())
    assert (q7["discover"]["sessions"], q7["cart"]["sessions"], q7["purchase"]["sessions"]) == (
        t.sessions - readers, t.carts, t.orders)
    (q13,) = await ask(13)  # revenue per day from raw events
    assert (q13["day"], q13["orders"], q13["revenue"]) == (day, t.orders, t.revenue)
    q15 = {(r["step"], r["segment"]): r for r in await ask(15)}  # each segment's checkout abandonment
    leavers, buyers = truth[("all", "researcher")], truth[("all", "decisive")]
    assert (q15[("checkout.info", "researcher")]["reached"], q15[("checkout.info", "researcher")]["left_there"]) == (
        leavers.carts, leavers.carts)
    assert (q15[("checkout.info", "decisive")]["reached"], q15[("checkout.info", "decisive")]["left_there"]) == (
        buyers.carts, 0)
