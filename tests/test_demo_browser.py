"""The demo storefront and the dashboard in real Chromium, against a real `chainlens serve`."""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from chainlens.core.loading import from_mapping
from chainlens.demo.run import demo_config
from chainlens.demo.shop import ShopServer
from chainlens.demo.shoppers import ShopperModel, aftercare, arm_share
from tests.conftest import BROWSER_UA as UA
from tests.conftest import Serve, free_port, launch_chromium

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from playwright.sync_api import sync_playwright
    tmp = tmp_path_factory.mktemp("demo")
    config = demo_config(free_port(), free_port())
    config["store"]["dsn"] = f"chdb://{tmp}/store"
    config["collector"].update(spool_dir=str(tmp / "spool"), workers=1)
    config["rollup"]["every_s"] = 0
    srv = Serve(tmp, config).start()
    site = from_mapping(config).sites[0]
    shop = ShopServer(site, public_url=srv.url, port=int(config["sites"][0]["origins"][0].rsplit(":", 1)[1])).start()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        yield {"srv": srv, "shop": shop, "browser": browser, "tmp": tmp}
        browser.close()
    shop.stop()
    srv.stop()


def test_a_shopper_walks_the_demo_store_and_lands_in_clickhouse(demo: dict[str, Any]) -> None:
    shop, srv = demo["shop"], demo["srv"]
    page = demo["browser"].new_context(user_agent=UA).new_page()
    page.set_default_timeout(10_000)
    page.goto(shop.url + "/")
    page.click("text=Trail runner shoes")
    page.click("text=Add to cart")
    page.click("text=Checkout")
    page.click("button:has-text('Continue')")  # empty required fields: form_invalid, no navigation
    page.fill("input[name=email]", "shopper@example.com")
    page.fill("input[name=password]", "correct horse")
    page.fill("input[name=address]", "1 Trail Road")
    page.fill("input[name=postcode]", "10115")
    page.click("button:has-text('Continue')")
    page.click("text=Continue to payment")
    page.fill("input[name=card]", "4000 0000 0000 0002")
    page.click("button:has-text('Pay')")
    page.wait_for_selector("text=Your card was declined")
    page.fill("input[name=card]", "4242 4242 4242 4242")
    page.click("button:has-text('Pay')")
    page.click("text=Place order")
    page.wait_for_selector("text=Your order is on its way")
    sid = page.evaluate("JSON.parse(localStorage.chainlens_id).s")
    page.close(run_before_unload=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rows = srv.sql(f"SELECT type, step, name, props, is_bot FROM events FINAL WHERE session_id = '{sid}' "
                       "ORDER BY ts")
        if any(r["step"] == "purchase" for r in rows) and any(r["name"] == "step_time" and r["step"] == "purchase"
                                                               for r in rows):
            break
        time.sleep(0.3)
    steps = {r["step"] for r in rows if r["type"] in ("page", "step")}
    assert steps >= {"discover", "select", "cart", "checkout.info", "checkout.shipping", "checkout.payment",
                     "checkout.review", "purchase"}
    obstacles = {(r["name"], r["step"]) for r in rows if r["type"] == "obstacle"}
    assert obstacles >= {("account_required", "checkout.info"), ("form_invalid", "checkout.info"),
                         ("shipping_cost_shown", "checkout.shipping"), ("payment_declined", "checkout.payment")}
    assert all("shopper@example.com" not in orjson.dumps(r).decode() for r in rows)  # no form values
    assert not any(r["is_bot"] for r in rows)  # a browser's session counts in the rollups


def history(demo: dict[str, Any]) -> None:
    """Five days of the shopper model, imported and rolled up once for the dashboard tests."""
    if demo.get("history"):
        return
    srv, tmp = demo["srv"], demo["tmp"]
    now = int(time.time() * 1000)
    model = ShopperModel(seed=5, origin=demo["shop"].url, change_at_ms=now - 86_400_000)
    sessions = list(model.sessions(start_ms=now - 5 * 86_400_000, end_ms=now - 3 * 3_600_000, count=3000))
    rng = random.Random(5)
    lines = [orjson.dumps({**e, "ua": s.user_agent}) for s in sessions for e in s.events]
    lines += [orjson.dumps(e) for s in sessions for e in aftercare(s, rng, now_ms=now)]  # the back office's reports
    (tmp / "history.jsonl").write_bytes(b"\n".join(lines))
    srv.cli("import", str(tmp / "history.jsonl"), "--site", "demo")
    srv.cli("rollup")
    demo["history"] = True


def test_dashboard_shows_the_rollup_figures_without_console_errors(demo: dict[str, Any]) -> None:
    srv = demo["srv"]
    history(demo)
    day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).date().isoformat()
    page = demo["browser"].new_context().new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{srv.url}/dashboard?site=demo&from={day}&to={day}")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    print(f"\ndashboard screenshot: {shot}")
    assert errors == []
    assert page.locator("ul.bars").count() == 3
    cells = page.eval_on_selector_all("#checkout tr", "rows => rows.slice(1).map(r => "
                                      "[...r.children].map(c => c.textContent.trim()))")
    expected = srv.sql(
        "SELECT step, reached, continued, abandoned, abandonment_rate FROM checkout_abandonment_daily "
        f"WHERE day = '{day}' AND device = 'all' AND visitor = 'all' AND segment = 'all' ORDER BY step_index")
    assert [c[:4] for c in cells] == [[r["step"], str(r["reached"]), str(r["continued"]), str(r["abandoned"])]
                                      for r in expected]
    assert [c[4] for c in cells] == [f"{float(r['abandonment_rate']):.1%}" for r in expected]
    timing = page.eval_on_selector_all("#timing tr", "rows => rows.slice(1).map(r => "
                                       "[...r.children].map(c => c.textContent.trim()))")
    table = {(r["step"], r["next_step"]): r for r in srv.sql(
        "SELECT step, next_step, transitions FROM step_timing_daily "
        f"WHERE day = '{day}' AND device = 'all' AND visitor = 'all' AND segment = 'all'")}
    assert {(c[0], c[1]): c[2] for c in timing} == {k: str(r["transitions"]) for k, r in table.items()}
    fast = srv.sql(f"SELECT rate FROM fast_track_daily WHERE day = '{day}'")[0]
    assert page.inner_text("#fast-track") == f"{float(fast['rate']):.1%}"
    page.close()


def cells(page: Any, table: str) -> list[list[str]]:
    return page.eval_on_selector_all(f"#{table} tr", "rows => rows.slice(1).map(r => "
                                     "[...r.children].map(c => c.textContent.trim()))")


def test_segments_landing_pages_and_campaigns_on_the_dashboard(demo: dict[str, Any]) -> None:
    srv = demo["srv"]
    history(demo)
    day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).date().isoformat()
    page = demo["browser"].new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{srv.url}/dashboard?site=demo&from={day}&to={day}")
    assert errors == []
    # Segments side by side on the checkout table: each cell is that segment's row of the table.
    header = page.eval_on_selector_all("#checkout-by-segment tr:first-child th", "hs => hs.map(h => h.textContent)")
    assert header == ["step", "big_basket", "decisive", "researcher", "returning_to_finish", "browser"]
    rows = {(r["step"], r["segment"]): r for r in srv.sql(
        "SELECT step, segment, reached, abandonment_rate FROM checkout_abandonment_daily "
        f"WHERE day = '{day}' AND device = 'all' AND visitor = 'all' AND segment != 'all'")}
    shown = cells(page, "checkout-by-segment")
    assert [c[0] for c in shown] == ["cart", "checkout.info", "checkout.shipping", "checkout.payment",
                                     "checkout.review"]
    for c in shown:
        for segment, text in zip(header[1:], c[1:], strict=True):
            r = rows.get((c[0], segment))
            assert text == ("–" if r is None else f"{float(r['abandonment_rate']):.1%} of {r['reached']}")
    # The model's jobs show: decisive shoppers leave at the shipping cost less than researchers do.
    # Over the five days: which sessions fall on one calendar day depends on the hour the test
    # runs, and a day can hold too few researchers at that step to tell.
    ship = {r["segment"]: int(r["abandoned"]) / int(r["reached"]) for r in srv.sql(
        "SELECT segment, sum(reached) AS reached, sum(abandoned) AS abandoned FROM checkout_abandonment_daily "
        "WHERE step = 'checkout.shipping' AND device = 'all' AND visitor = 'all' "
        "AND segment IN ('decisive', 'researcher') GROUP BY segment")}
    assert ship["decisive"] < ship["researcher"], ship
    # Landing pages, as landing_engagement_daily holds them.
    landing = {r["landing_path"]: r for r in srv.sql(
        "SELECT landing_path, sessions, engaged_7s, bounced FROM landing_engagement_daily WHERE "
        f"day = '{day}' AND landing_path != 'all' AND source = 'all' AND device = 'all' AND segment = 'all'")}
    for path, sessions, engaged, bounced, *_ in cells(page, "landing-pages"):
        r = landing[path]
        assert (sessions, engaged, bounced) == (str(r["sessions"]), f"{int(r['engaged_7s']) / int(r['sessions']):.1%}",
                                                f"{int(r['bounced']) / int(r['sessions']):.1%}")
    # Campaigns by orders, as campaign_daily holds them.
    campaigns = {(r["source"], r["medium"], r["campaign"] or "–"): r for r in srv.sql(
        "SELECT source, medium, campaign, sessions, orders FROM campaign_daily "
        f"WHERE day = '{day}' AND device = 'all' AND medium != 'all'")}
    shown = cells(page, "campaign-table")
    assert {("newsletter", "email", "spring_sale"), ("instagram", "paid_social", "trail_reels")} <= {
        tuple(c[:3]) for c in shown}
    for c in shown:
        assert (c[3], c[4]) == (str(campaigns[tuple(c[:3])]["sessions"]), str(campaigns[tuple(c[:3])]["orders"]))
    assert [int(c[4]) for c in shown] == sorted((int(c[4]) for c in shown), reverse=True)
    # The segment filter narrows the whole page to one segment.
    page.goto(f"{srv.url}/dashboard?site=demo&from={day}&to={day}&segment=decisive")
    decisive = srv.sql("SELECT step, reached FROM checkout_abandonment_daily WHERE "
                       f"day = '{day}' AND device = 'all' AND visitor = 'all' AND segment = 'decisive' "
                       "ORDER BY step_index")
    assert [c[:2] for c in cells(page, "checkout")] == [[r["step"], str(r["reached"])] for r in decisive]
    page.close()


def test_after_the_purchase_on_the_dashboard(demo: dict[str, Any]) -> None:
    srv = demo["srv"]
    history(demo)
    start = (dt.datetime.now(dt.UTC) - dt.timedelta(days=5)).date().isoformat()
    end = dt.datetime.now(dt.UTC).date().isoformat()
    page = demo["browser"].new_context().new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{srv.url}/dashboard?site=demo&from={start}&to={end}")
    assert errors == []
    days = srv.sql("SELECT day, orders, shipped, delivered, on_time_share FROM fulfillment_daily "
                   f"WHERE day BETWEEN '{start}' AND '{end}' AND device = 'all' AND segment = 'all' ORDER BY day")
    shown = cells(page, "fulfillment")
    assert [c[:4] for c in shown] == [[str(r["day"]), str(r["orders"]), str(r["shipped"]), str(r["delivered"])]
                                      for r in days]
    assert [c[5] for c in shown] == ["–" if r["on_time_share"] is None else f"{float(r['on_time_share']):.1%}"
                                     for r in days]
    reasons = cells(page, "return-reasons")
    assert reasons and all(c[0] in ("too small", "changed my mind", "arrived damaged", "not as pictured")
                           for c in reasons)
    nps = {c[0]: int(c[2]) for c in cells(page, "satisfaction")}
    # The model's weak links: late deliveries and checkout obstacles cost satisfaction.
    assert nps["orders delivered late"] < nps["orders delivered on time"]
    assert nps["sessions that met an obstacle"] < nps["sessions without an obstacle"]
    total = srv.sql("SELECT sum(responses) AS n FROM satisfaction_daily WHERE asked_at = 'all' AND device = 'all' "
                    f"AND segment = 'all' AND link = 'all' AND day BETWEEN '{start}' AND '{end}'")[0]
    assert cells(page, "satisfaction")[0][1] == str(total["n"])
    page.close()


def test_a_campaign_landing_engages_and_counts_its_clicks(demo: dict[str, Any]) -> None:
    shop, srv = demo["shop"], demo["srv"]
    page = demo["browser"].new_context(user_agent=UA).new_page()
    page.set_default_timeout(10_000)
    page.goto(shop.url + "/?utm_source=news&utm_medium=email&utm_campaign=spring&gclid=abc&email=me@x.example")
    page.mouse.wheel(0, 2000)  # a scroll past a quarter of the screen: the first interaction
    page.wait_for_timeout(300)
    page.click("text=Trail runner shoes")  # the first click reaches a product
    page.wait_for_selector("text=Add to cart")
    sid = page.evaluate("JSON.parse(localStorage.chainlens_id).s")
    page.close(run_before_unload=True)
    deadline = time.monotonic() + 20
    while True:
        got = srv.sql(f"SELECT type, step, name, url, props FROM events FINAL WHERE session_id = '{sid}' ORDER BY ts")
        if any(r["step"] == "select" and r["type"] == "page" for r in got) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    landing = next(r for r in got if r["type"] == "page")
    assert landing["props"] == {"utm_source": "news", "utm_medium": "email", "utm_campaign": "spring",
                                "click_id": "gclid"}
    assert "?" not in landing["url"] and "me@x" not in str(got)  # the rest of the query is never stored
    assert [r["name"] for r in got if r["type"] == "track" and r["name"] == "engage"] == ["engage"]
    product = next(r for r in got if r["type"] == "page" and r["step"] == "select")
    assert product["props"]["clicks"] == "1"


def test_every_demo_page_runs_without_a_page_error_and_pushes_its_ga4_events(demo: dict[str, Any]) -> None:
    shop, srv = demo["shop"], demo["srv"]
    page = demo["browser"].new_context(user_agent=UA).new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
    posted: list[str] = []
    page.on("request", lambda r: posted.append(r.url) if r.method == "POST" and "/checkout/" in r.url else None)
    seen: list[str] = []
    for path in ("/", "/search?q=shoes", "/product/101", "/product/113", "/cart", "/checkout/info?sku=101"):
        page.goto(shop.url + path)
        page.wait_for_function("window.chainlens && !window.chainlens.q")
        seen.append(path)
    # The forms: the account step carries a password, so it goes as POST, never in the URL.
    page.fill("input[name=email]", "walker@example.com")
    page.fill("input[name=password]", "hunter2 secret")
    page.fill("input[name=address]", "2 Summit Lane")
    page.fill("input[name=postcode]", "80331")
    page.click("button:has-text('Continue')")
    page.wait_for_url("**/checkout/shipping*")
    assert "hunter2" not in page.url and any("/checkout/shipping" in u for u in posted)
    page.click("text=Continue to payment")
    page.fill("input[name=card]", "4242 4242 4242 4242")
    page.click("button:has-text('Pay')")
    page.wait_for_url("**/checkout/review*")
    assert "4242" not in page.url
    page.click("text=Place order")
    page.wait_for_selector("text=Your order is on its way")
    sid = page.evaluate("JSON.parse(localStorage.chainlens_id).s")
    page.close(run_before_unload=True)
    assert errors == []
    deadline = time.monotonic() + 20
    while True:
        names = {r["name"] for r in srv.sql(
            f"SELECT name FROM events FINAL WHERE session_id = '{sid}' AND type IN ('track', 'step')")}
        if {"view_search_results", "view_item", "add_shipping_info", "add_payment_info"} <= names:
            break
        assert time.monotonic() < deadline, f"GA4 events that arrived: {sorted(names)}"
        time.sleep(0.3)


@pytest.mark.parametrize("width", [390, 1280])
def test_a_shop_owner_reads_the_dashboard_on_a_phone_and_a_desktop(demo: dict[str, Any], width: int) -> None:
    srv = demo["srv"]
    history(demo)
    today = dt.datetime.now(dt.UTC).date()
    start, end = (today - dt.timedelta(days=3)).isoformat(), (today - dt.timedelta(days=1)).isoformat()
    page = demo["browser"].new_context(viewport={"width": width, "height": 900}).new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{srv.url}/dashboard?site=demo&from={start}&to={end}")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{width}px.png"), full_page=True)
    assert errors == []
    # Nothing is cut off at the right edge: wide tables scroll inside their own box.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    # The headline equals the tables, and its changes compare with the three days before.
    scope = f"site_id = 'demo' AND day BETWEEN '{start}' AND '{end}'"
    (h,) = srv.sql(f"SELECT count() AS sessions, countIf(purchased) AS orders, sum(revenue) AS revenue "
                   f"FROM chain_sessions WHERE {scope}")
    assert int(h["orders"]) > 0 and page.inner_text("#orders") == str(h["orders"])
    assert page.inner_text("#revenue").startswith(f"{float(h['revenue']):,.2f}")
    assert page.inner_text("#conversion") == f"{int(h['orders']) / int(h['sessions']):.1%}"
    before_start = (today - dt.timedelta(days=6)).isoformat()
    before_end = (today - dt.timedelta(days=4)).isoformat()
    (b,) = srv.sql(f"SELECT countIf(purchased) AS orders FROM chain_sessions WHERE site_id = 'demo' "
                   f"AND day BETWEEN '{before_start}' AND '{before_end}'")
    assert int(b["orders"]) > 0  # the history reaches into the previous period
    assert page.inner_text("#headline .kpi:nth-child(2) .delta") == f"{int(h['orders']) / int(b['orders']) - 1:+.1%}"
    # The sessions that left, and a checkout step's own list through its link.
    left = page.eval_on_selector_all("#left-sessions tr", "rows => rows.slice(1).map(r => r.children[0].textContent)")
    (n,) = srv.sql(f"SELECT count() AS n FROM chain_sessions WHERE {scope} AND abandoned_at IN "
                   "('cart', 'checkout.info', 'checkout.shipping', 'checkout.payment', 'checkout.review')")
    assert len(left) == min(20, int(n["n"])) > 0
    # Products in the carts that were left, counted by session.
    products = page.eval_on_selector_all("#abandoned-products tr", "rows => rows.slice(1).map(r => "
                                         "[...r.children].map(c => c.textContent.trim()))")
    assert products and products[0][0] in ("Trail runner shoes", "Rain shell jacket", "Merino socks",
                                           "Day pack 20 L", "Headlamp", "Limited edition tent")
    top_id = products[0][1]
    (c,) = srv.sql(
        "SELECT uniqExact(session_id) AS n FROM events WHERE site_id = 'demo' AND step = 'cart' "
        f"AND position(props['item_list'], '[\"{top_id}\",') > 0 AND session_id IN (SELECT session_id FROM "
        f"chain_sessions WHERE {scope} AND abandoned_at IN ('cart', 'checkout.info', 'checkout.shipping', "
        "'checkout.payment', 'checkout.review'))")
    assert products[0][2] == str(c["n"])
    page.click("#checkout tr:has(td:text-is('checkout.shipping')) >> text=who left")
    page.wait_for_url("**stopped=checkout.shipping**")
    stopped = page.eval_on_selector_all("#left-sessions tr",
                                        "rows => rows.slice(1).map(r => r.children[0].textContent)")
    assert stopped and set(stopped) == {"checkout.shipping"}
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.close()


AXE = Path(sys.prefix) / "js" / "node_modules" / "axe-core" / "axe.min.js"  # installed by make (JS_PACKAGES)


@pytest.mark.parametrize("width", [390, 1280])
def test_the_dashboard_reads_on_a_phone_passes_axe_and_gives_its_tables_away(demo: dict[str, Any],
                                                                              width: int) -> None:
    srv = demo["srv"]
    history(demo)
    today = dt.datetime.now(dt.UTC).date()
    start, end = (today - dt.timedelta(days=3)).isoformat(), (today - dt.timedelta(days=1)).isoformat()
    context = demo["browser"].new_context(viewport={"width": width, "height": 900}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{srv.url}/dashboard?site=demo&from={start}&to={end}")
    page.wait_for_selector(".trend-chart .plot canvas")
    for figure in page.query_selector_all(".trend-chart"):
        figure.screenshot(path=str(ARTIFACTS / f"trend-{figure.get_attribute('data-step')}-{width}px.png"))
    assert errors == []
    # Every table fits: no sideways scroll inside a table's box either (phones get one card a row).
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    cut = page.eval_on_selector_all(".scroll", "els => els.filter(e => e.scrollWidth > e.clientWidth + 1)"
                                    ".map(e => e.querySelector('table') && e.querySelector('table').id)")
    assert cut == [] or width > 600, cut
    # Text of at least 12 px; on a phone, whatever is tapped is at least 40 px tall.
    small = page.evaluate("""[...document.querySelectorAll('body *')].filter(e => e.offsetParent &&
        [...e.childNodes].some(n => n.nodeType === 3 && n.textContent.trim()) &&
        parseFloat(getComputedStyle(e).fontSize) < 12).map(e => e.tagName + ' ' + e.textContent.slice(0, 30))""")
    assert small == []
    if width <= 600:
        taps = page.evaluate("""[...document.querySelectorAll('a, button, select, input, summary')]
            .filter(e => e.offsetParent && e.getBoundingClientRect().height < 40)
            .map(e => e.tagName + ' ' + (e.textContent || e.name).trim().slice(0, 30))""")
        assert taps == []
    # axe-core finds no serious or critical violation.
    page.add_script_tag(path=str(AXE))
    found = page.evaluate("axe.run(document, {resultTypes: ['violations']}).then(r => r.violations"
                          ".filter(v => v.impact === 'serious' || v.impact === 'critical')"
                          ".map(v => [v.id, v.nodes.length, v.nodes[0].target.join(' ')]))")
    assert found == [], found
    # The CSV of a table is exactly what it shows.
    with page.expect_download() as download:
        page.click("button[aria-label='download CSV of the table checkout']")
    text = Path(download.value.path()).read_text()
    shown = page.eval_on_selector_all("#checkout tr", "rows => rows.map(r => [...r.cells].map(c => "
                                      "c.textContent.replace(/\\s+/g, ' ').trim()))")
    assert list(csv.reader(io.StringIO(text))) == shown
    page.screenshot(path=str(ARTIFACTS / f"dashboard-checked-{width}px.png"), full_page=True)
    context.close()


def last_days_dashboard(demo: dict[str, Any]) -> tuple[Any, str, str]:
    """The dashboard at 1280 px for the three days before today, over the imported history."""
    history(demo)
    today = dt.datetime.now(dt.UTC).date()
    start, end = (today - dt.timedelta(days=3)).isoformat(), (today - dt.timedelta(days=1)).isoformat()
    page = demo["browser"].new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{demo['srv'].url}/dashboard?site=demo&from={start}&to={end}")
    return page, start, end


def shown(page: Any, table: str) -> dict[str, list[str]]:
    """A table's rows on the page, by their first cell: the other cells' text."""
    cells = page.eval_on_selector_all(f"#{table} tr", "rows => rows.slice(1).map(r => "
                                      "[...r.children].map(c => c.textContent.trim()))")
    return {c[0]: c[1:] for c in cells}


def test_the_breakdowns_equal_the_events(demo: dict[str, Any]) -> None:
    """Browser and invalid form fields on the dashboard, counted again from the raw events."""
    srv = demo["srv"]
    page, start, end = last_days_dashboard(demo)

    sessions = ("SELECT session_id, argMin(browser, ts) AS browser, min(ts) AS started, "
                "countIf(step = 'purchase') > 0 AS bought, "
                "groupUniqArrayIf(concat(step, ': ', props['field']), type = 'obstacle' AND name = 'form_invalid') "
                "AS fields FROM events WHERE site_id = 'demo' AND NOT is_bot AND NOT startsWith(session_id, 'order:') "
                f"GROUP BY session_id HAVING toDate(started) BETWEEN '{start}' AND '{end}'")
    browsers = srv.sql(f"SELECT browser, count() AS n, countIf(bought) AS orders FROM ({sessions}) GROUP BY browser")
    table = shown(page, "breakdown-browser")
    assert {b: table[b][0] for b in table} == {r["browser"]: str(r["n"]) for r in browsers}
    assert {b: table[b][2] for b in table} == {r["browser"]: str(r["orders"]) for r in browsers}
    fields = srv.sql(f"SELECT f, count() AS n FROM ({sessions}) ARRAY JOIN fields AS f GROUP BY f")
    table = shown(page, "breakdown-invalid-field")
    assert fields and {f: table[f][0] for f in table} == {r["f"]: str(r["n"]) for r in fields}
    page.close()


def test_trends_alerts_and_the_device_filter(demo: dict[str, Any]) -> None:
    srv = demo["srv"]
    history(demo)
    today = dt.datetime.now(dt.UTC).date()
    start, end = (today - dt.timedelta(days=4)).isoformat(), (today - dt.timedelta(days=1)).isoformat()
    page = demo["browser"].new_context(viewport={"width": 1280, "height": 900}).new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{srv.url}/dashboard?site=demo&from={start}&to={end}")
    assert page.locator("select[name=device]").count() == 1, page.inner_html("form")
    page.select_option("select[name=device]", "mobile")
    page.click("button:has-text('show')")
    page.wait_for_url("**device=mobile**")
    page.screenshot(path=str(ARTIFACTS / "dashboard-mobile-filter.png"), full_page=True)
    assert errors == []
    # The checkout table for mobile sessions equals the table's mobile rows.
    cells = page.eval_on_selector_all("#checkout tr", "rows => rows.slice(1).map(r => "
                                      "[...r.children].slice(0, 4).map(c => c.textContent.trim()))")
    expected = srv.sql(
        "SELECT step, sum(reached) AS reached, sum(continued) AS continued, sum(abandoned) AS abandoned "
        f"FROM checkout_abandonment_daily WHERE site_id = 'demo' AND day BETWEEN '{start}' AND '{end}' "
        "AND device = 'mobile' AND visitor = 'all' AND segment = 'all' GROUP BY step, step_index ORDER BY step_index")
    assert cells == [[r["step"], str(r["reached"]), str(r["continued"]), str(r["abandoned"])] for r in expected]
    # One trend chart per checkout step, drawn (a uPlot canvas with its axes), over a per-day
    # table that equals the rollup table: this period's rate and the previous period's.
    drawn = page.eval_on_selector_all(".trend-chart", "fs => fs.map(f => [f.dataset.step, "
                                      "!!f.querySelector('.plot canvas'), f.querySelectorAll('.u-axis').length])")
    days = srv.sql("SELECT step, day, abandonment_rate FROM checkout_abandonment_daily WHERE site_id = 'demo' "
                   f"AND day BETWEEN toDate('{start}') - 4 AND '{end}' AND device = 'mobile' AND visitor = 'all' "
                   "AND segment = 'all' ORDER BY step_index, day")
    steps = list(dict.fromkeys(r["step"] for r in days if r["day"] >= start))
    assert drawn == [[step, True, 2] for step in steps]
    rate = {(r["step"], r["day"]): f"{float(r['abandonment_rate']):.1%}" for r in days}
    for step in steps:
        shown = page.eval_on_selector_all(f'.trend-chart[data-step="{step}"] .trend-days tr', "rows => rows.slice(1)"
                                          ".map(r => [...r.children].map(c => c.textContent.trim()))")
        assert [[r[0], r[2], r[3]] for r in shown] == [
            [d, rate[(step, d)], rate.get((step, (dt.date.fromisoformat(d) - dt.timedelta(days=4)).isoformat()), "–")]
            for (s_, d) in sorted(k for k in rate if k[0] == step and k[1] >= start)]
    # The alerts panel: one line per episode, open ones first, as the alerts table holds them.
    panel = page.eval_on_selector_all("#alerts .alert", "els => els.map(e => e.dataset.state)")
    (episodes,) = srv.sql("SELECT count() AS n FROM (SELECT DISTINCT step, device, kind, window_hours FROM alerts "
                          "WHERE site_id = 'demo')")
    assert len(panel) == min(10, int(episodes["n"])) > 0
    assert panel == sorted(panel, key=lambda s: s == "resolved")
    page.close()


@pytest.mark.parametrize("arm", ["treatment", "holdout"])
def test_the_moment_of_risk_calls_the_handler_in_the_treatment_arm_only_and_once(
    demo: dict[str, Any], arm: str
) -> None:
    shop, srv = demo["shop"], demo["srv"]
    # A session id whose share puts it in the arm (the risk script's FNV-1a, 20% holdout).
    sid = next(s for s in (str(uuid.uuid4()) for _ in range(1000)) if (arm_share(s) < 0.2) == (arm == "holdout"))
    context = demo["browser"].new_context(user_agent=UA)
    context.add_init_script("localStorage.setItem('chainlens_id', JSON.stringify("
                            f"{{s: '{sid}', a: 'a-{sid}', n: 1, t: Date.now()}}))")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    leave = "document.dispatchEvent(new MouseEvent('mouseout', {clientY: -5}))"  # out through the top
    with page.expect_response(lambda r: "/hints" in r.url):
        page.goto(shop.url + "/checkout/shipping?sku=101")
    page.wait_for_timeout(200)
    page.evaluate(leave)
    page.evaluate(leave)  # twice on the page: still once
    offers = page.evaluate("window.offers || 0")
    if arm == "treatment":
        page.click("#take")
    page.goto(shop.url + "/checkout/payment?sku=101")  # another configured step, the same session
    page.wait_for_load_state("networkidle")  # the hints (perhaps from the browser's cache)
    page.evaluate(leave)
    offers_later = page.evaluate("window.offers || 0")
    page.close(run_before_unload=True)
    assert errors == []
    assert (offers, offers_later) == ((1, 0) if arm == "treatment" else (0, 0))
    deadline = time.monotonic() + 20
    while True:
        rows = srv.sql("SELECT name, step, props FROM events FINAL WHERE session_id = "
                       f"'{sid}' AND name IN ('intervention', 'intervention_outcome', 'step_time') ORDER BY ts")
        if any(r["name"] == "step_time" and r["step"] == "checkout.payment" for r in rows) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    moments = [r for r in rows if r["name"] == "intervention"]
    assert [(r["step"], r["props"]) for r in moments] == [
        ("checkout.shipping", {"trigger": "exit_intent", "arm": arm})]  # both arms record it, once
    outcomes = [r["props"] for r in rows if r["name"] == "intervention_outcome"]
    assert outcomes == ([{"outcome": "accepted", "offer": "FREESHIP", "cost": "4.95"}] if arm == "treatment" else [])


def test_the_lift_of_acting_on_the_dashboard(demo: dict[str, Any]) -> None:
    """Last in this module: it adds a day of shoppers to whom the store offers free shipping at risk."""
    srv, tmp = demo["srv"], demo["tmp"]
    # A whole UTC day four days ago (the demo site's time zone), so the day read below holds them
    # all at any hour the suite runs.
    day_start = dt.datetime.combine(dt.datetime.now(dt.UTC).date() - dt.timedelta(days=4), dt.time(), dt.UTC)
    start_ms = int(day_start.timestamp() * 1000)
    model = ShopperModel(seed=9, origin=demo["shop"].url, act=True)
    lines = [orjson.dumps({**e, "ua": s.user_agent})
             for s in model.sessions(start_ms=start_ms, end_ms=start_ms + 86_400_000 - 3_600_000, count=1500)
             for e in s.events]
    (tmp / "acting.jsonl").write_bytes(b"\n".join(lines))
    srv.cli("import", str(tmp / "acting.jsonl"), "--site", "demo")
    srv.cli("rollup")
    day = day_start.date().isoformat()
    page = demo["browser"].new_context().new_page()
    page.goto(f"{srv.url}/dashboard?site=demo&from={day}&to={day}")
    rows = {(r["trigger"], r["arm"]): r for r in srv.sql(
        "SELECT trigger, arm, sessions, purchases FROM intervention_daily "
        f"WHERE day = '{day}' AND step = 'checkout.shipping' AND device = 'all'")}
    shown = {c[1].split(" ")[0]: c for c in cells(page, "interventions") if c[0] == "checkout.shipping"}
    assert set(shown) == {t for t, _ in rows}
    for trigger, c in shown.items():  # a rare trigger may have met no one of an arm that day
        treated, held = (rows.get((trigger, arm), {"sessions": 0})["sessions"] for arm in ("treatment", "holdout"))
        assert c[2] == f"{treated} / {held}"
    treated, held = rows[("all", "treatment")], rows[("all", "holdout")]
    lift = int(treated["purchases"]) / int(treated["sessions"]) - int(held["purchases"]) / int(held["sessions"])
    assert shown["all"][5].startswith(f"{lift * 100:+.1f} pp")
    page.close()


def test_products_and_search_equal_the_events(demo: dict[str, Any]) -> None:
    """The products and site search reports, counted again from the raw events."""
    srv = demo["srv"]
    page, start, end = last_days_dashboard(demo)

    scope = ("site_id = 'demo' AND NOT is_bot AND NOT startsWith(session_id, 'order:') AND session_id IN "
             "(SELECT session_id FROM events WHERE site_id = 'demo' GROUP BY session_id "
             f"HAVING toDate(min(ts)) BETWEEN '{start}' AND '{end}')")
    bought = f"(SELECT session_id FROM events WHERE {scope} AND step = 'purchase')"
    items = srv.sql(
        "SELECT item.2 AS name, uniqExactIf(session_id, step = 'select') AS viewed, "
        "uniqExactIf(session_id, step = 'cart') AS carted, "
        f"uniqExactIf(session_id, step = 'purchase') AS bought FROM events "
        "ARRAY JOIN JSONExtract(props['item_list'], 'Array(Tuple(String, String))') AS item "
        f"WHERE {scope} AND mapContains(props, 'item_list') GROUP BY name")
    table = shown(page, "products-table")
    truth = {r["name"]: [str(r["viewed"]), str(r["carted"]), str(r["bought"])] for r in items}
    assert len(table) == len(truth) == 6  # the demo's catalogue
    assert {k: [v[1], v[3], v[5]] for k, v in table.items()} == truth
    terms = srv.sql(
        "SELECT props['search_term'] AS term, uniqExact(session_id) AS sessions, "
        f"uniqExactIf(session_id, session_id IN {bought}) AS orders FROM events "
        f"WHERE {scope} AND step = 'search' AND props['search_term'] != '' GROUP BY term")
    exits = srv.sql(
        "SELECT last, count() AS n FROM (SELECT argMax(step, ts) AS final, "
        "argMaxIf(props['search_term'], ts, step = 'search') AS last FROM events "
        f"WHERE {scope} AND type IN ('page', 'step') AND step != '' GROUP BY session_id) "
        "WHERE final = 'search' AND last != '' GROUP BY last")
    left = {r["last"]: r["n"] for r in exits}
    table = shown(page, "search-terms")
    assert len(table) == len(terms) == 7  # the demo's search terms
    assert {t: [v[2], v[3], v[5]] for t, v in table.items()} == {
        r["term"]: [str(r["sessions"]), str(left.get(r["term"], 0)), str(r["orders"])] for r in terms}
    # The searches that find nothing lose more shoppers than those that do.
    rate = {t: int(v[3]) / int(v[2]) for t, v in table.items()}
    assert min(rate["gift card"], rate["waterproof boots"]) > max(rate["tent"], rate["trail shoes"])
    page.close()


REPORTS = {"overview": "h1", "alerts": "#alerts", "checkout": "#checkout-steps", "products": "#products",
           "search": "#search", "who": "#breakdowns"}


@pytest.mark.parametrize("width", [390, 1280])
def test_each_report_as_a_screenshot(demo: dict[str, Any], width: int) -> None:
    """What an owner sees at each report's heading, saved for the record (ARTIFACTS)."""
    srv = demo["srv"]
    history(demo)
    today = dt.datetime.now(dt.UTC).date()
    start, end = (today - dt.timedelta(days=3)).isoformat(), (today - dt.timedelta(days=1)).isoformat()
    context = demo["browser"].new_context(viewport={"width": width, "height": 844 if width < 600 else 900})
    page = context.new_page()
    page.goto(f"{srv.url}/dashboard?site=demo&from={start}&to={end}")
    page.wait_for_selector(".trend-chart .plot canvas")
    for name, selector in REPORTS.items():
        heading = page.locator(selector).first
        heading.scroll_into_view_if_needed()
        page.evaluate("el => window.scrollTo(0, el.getBoundingClientRect().top + window.scrollY - 8)",
                      heading.element_handle())
        page.screenshot(path=str(ARTIFACTS / f"report-{name}-{width}px.png"))
        assert heading.is_visible()
    context.close()
