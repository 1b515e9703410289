"""The snippet in real Chromium against a real `chainlens serve`: rows in ClickHouse."""

from __future__ import annotations

import base64
import hashlib
import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sdk_js.render import STUB
from tests.conftest import BROWSER_UA as UA
from tests.conftest import CHROMIUM, Serve, free_port, launch_chromium, make_config, site_config

pytestmark = [pytest.mark.slow, pytest.mark.browser]


class Pages:
    """A local storefront: each path maps to (body html, extra headers)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"
        self.routes: dict[str, tuple[str, dict[str, str]]] = {}
        pages = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                body, headers = pages.routes.get(path, pages.routes.get("*", ("not found", {})))
                self.send_response(200 if path in pages.routes or "*" in pages.routes else 404)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is required: `make test` installs it with apt-get")
    from playwright.sync_api import sync_playwright
    tmp = tmp_path_factory.mktemp("browser")
    pages = Pages()
    site = site_config(origins=[pages.origin], step_urls={
        "discover": ["/"], "select": ["/product/*"], "checkout.shipping": ["/app/shipping"]})
    lite = site_config(id="lite", origins=[pages.origin], cookieless=True)
    asks = site_config(id="asks", origins=[pages.origin], require_consent=True)
    config = make_config(tmp, collector={"workers": 1, "flush_interval_s": 0.2}, sites=[site, lite, asks])
    srv = Serve(tmp, config).start()
    tag = srv.cli("snippet", "demo").stdout.strip()
    pages.lite_tag = srv.cli("snippet", "lite").stdout.strip()
    pages.asks_tag = srv.cli("snippet", "asks").stdout.strip()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        yield {"srv": srv, "pages": pages, "browser": browser, "tag": tag}
        browser.close()
    srv.stop()
    pages.server.shutdown()
    pages.server.server_close()


def html(tag: str, body: str = "", head: str = "", body_attrs: str = "") -> str:
    return f"<!doctype html><html><head>{head}{tag}</head><body {body_attrs}>{body}</body></html>"


def new_page(env: dict[str, Any], **context: Any) -> Any:
    ctx = env["browser"].new_context(user_agent=UA, **context)
    page = ctx.new_page()
    page.set_default_timeout(10_000)
    page.console_messages = []
    page.on("console", lambda m: page.console_messages.append(m))
    return page


def session_id(page: Any) -> str:
    return str(page.evaluate("JSON.parse(localStorage.chainlens_id).s"))


def rows(env: dict[str, Any], sid: str, *, expect: int = 1, timeout: float = 20) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        got = env["srv"].sql(
            "SELECT type, step, name, props, value, currency, order_id, url, user_id, toString(event_id) AS id "
            f"FROM events FINAL WHERE session_id = '{sid}' ORDER BY ts, type")
        if len(got) >= expect:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"session {sid}: {len(got)} events stored after {timeout:g} s, expected {expect}")
        time.sleep(0.3)


def test_a_shopper_session_across_pages_lands_as_steps_and_obstacles(env: dict[str, Any]) -> None:
    pages, tag = env["pages"], env["tag"]
    # GA4 before the snippet loads: the gtag() form.
    pages.routes["/"] = (html(tag, '<a href="/product/42">shoes</a>', head=(
        "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}"
        "gtag('event','view_item_list',{item_list_id:'new'});</script>")), {})
    # GA4 before the snippet loads: dataLayer.push form.
    pages.routes["/product/42"] = (html(tag, "<button id=b>buy</button>", head=(
        "<script>window.dataLayer=[{event:'view_item',ecommerce:{items:[{item_id:'42'}]}}];</script>")), {})
    pages.routes["/basket"] = (html(tag, body_attrs='data-chain-step="cart"', body=(
        '<button id=go data-chain-step="checkout.info">checkout</button>'
        '<form><input name=email required><button id=send>send</button></form>'
        "<button id=rage>apply coupon</button>"
        "<script>chainlens('obstacle', 'shipping_cost_shown', {amount: 4.9});</script>")), {})
    page = new_page(env)
    walk_started = time.monotonic()
    page.goto(pages.origin + "/?utm_source=mail")
    page.click("a")
    page.wait_for_url("**/product/42")
    page.goto(pages.origin + "/basket")
    page.wait_for_function("window.chainlens && !window.chainlens.q")
    page.click("#send")  # invalid: the email is required
    for _ in range(3):
        page.click("#rage")
    page.click("#go")
    page.evaluate("setTimeout(function () { throw new Error('boom at checkout') }, 0)")
    page.evaluate("void Promise.reject(new Error('payment sdk failed'))")
    page.wait_for_timeout(200)
    # gtag form after load, then a purchase through the page API.
    page.evaluate("() => { function gtag() { dataLayer.push(arguments) } "
                  "gtag('event', 'add_payment_info', {payment_type: 'card'}) }")
    page.evaluate("dataLayer.push({event: 'add_shipping_info', ecommerce: {shipping_tier: 'express'}})")
    page.evaluate("chainlens('identify', 'user-42')")
    page.evaluate("chainlens('step', 'purchase', {value: 59.9, currency: 'EUR', order_id: 'o-1'})")
    sid = session_id(page)
    walk_ms = (time.monotonic() - walk_started) * 1000
    page.close(run_before_unload=True)  # the tab closes: pagehide flushes with sendBeacon
    got = rows(env, sid, expect=16)
    steps = [(r["type"], r["step"]) for r in got if r["type"] in ("page", "step")]
    # view_item_list is a list page: browsing (discover), not a search
    assert steps[:3] == [("page", "discover"), ("step", "discover"), ("page", "select")]
    assert ("step", "checkout.shipping") in steps  # dataLayer.push after load
    assert ("step", "select") in steps  # view_item from dataLayer pushed before load
    assert ("page", "cart") in steps  # data-chain-step on <body>
    assert ("step", "checkout.info") in steps  # data-chain-step on a clicked element
    assert ("step", "checkout.payment") in steps  # gtag('event', 'add_payment_info')
    purchase = next(r for r in got if r["step"] == "purchase")
    assert (purchase["value"], purchase["currency"], purchase["order_id"]) == (59.9, "EUR", "o-1")
    assert purchase["user_id"] == "user-42" and any(r["type"] == "identify" for r in got)
    obstacles = {(r["name"], r["step"]) for r in got if r["type"] == "obstacle"}
    assert ("shipping_cost_shown", "cart") in obstacles
    assert ("form_invalid", "cart") in obstacles
    assert ("rage_click", "cart") in obstacles
    assert ("js_error", "checkout.info") in obstacles
    invalid = next(r for r in got if r["name"] == "form_invalid")
    assert invalid["props"] == {"field": "email"}  # the field's name, never its value
    errors = sorted(r["props"]["message"] for r in got if r["name"] == "js_error")
    assert any("boom at checkout" in m for m in errors) and any("payment sdk failed" in m for m in errors)
    timings = [r for r in got if r["name"] == "step_time"]
    # Visible time per step: one report per step left, each within the time the walk took.
    assert {r["step"] for r in timings} >= {"discover", "select", "cart"}
    assert all(0 < int(r["props"]["active_ms"]) <= walk_ms for r in timings)
    assert all("utm_source" not in r["url"] for r in got)  # query strings are scrubbed
    assert len({r["id"] for r in got}) == len(got)


def test_single_page_app_navigation(env: dict[str, Any]) -> None:
    pages, tag = env["pages"], env["tag"]
    pages.routes["/app/start"] = (html(tag), {})
    page = new_page(env)
    page.goto(pages.origin + "/app/start")
    page.wait_for_function("window.chainlens && !window.chainlens.q")
    page.evaluate("history.pushState({}, '', '/app/shipping')")
    page.evaluate("history.replaceState({}, '', '/app/shipping?tab=2')")  # same path: not a new page
    page.evaluate("history.pushState({}, '', '/app/other')")
    page.evaluate("history.back()")
    page.wait_for_function("location.pathname == '/app/shipping'")
    page.wait_for_timeout(100)
    sid = session_id(page)
    page.close(run_before_unload=True)
    got = [r for r in rows(env, sid, expect=4) if r["type"] == "page"]
    assert [(r["url"].split(pages.origin)[1], r["step"]) for r in got] == [
        ("/app/start", ""), ("/app/shipping", "checkout.shipping"), ("/app/other", ""),
        ("/app/shipping", "checkout.shipping")]


def test_collector_down_then_up_delivers_each_event_once(env: dict[str, Any]) -> None:
    pages, tag, srv = env["pages"], env["tag"], env["srv"]
    pages.routes["/outage"] = (html(tag), {})
    page = new_page(env)
    page.goto(pages.origin + "/outage")
    page.wait_for_function("window.chainlens && !window.chainlens.q")
    sid = session_id(page)
    rows(env, sid, expect=1)  # the page view is delivered
    assert srv.stop() == 0
    for i in range(3):
        page.evaluate(f"chainlens('track', 'while_down_{i}')")
    # the interval flush fails and keeps them (Playwright fails the wait at its deadline)
    page.wait_for_function("JSON.parse(localStorage.chainlens_q || '[]').length >= 3", timeout=15_000)
    srv.start()
    page.evaluate("window.dispatchEvent(new Event('online'))")
    got = rows(env, sid, expect=4)
    names = sorted(r["name"] for r in got if r["name"].startswith("while_down"))
    assert names == ["while_down_0", "while_down_1", "while_down_2"]
    page.wait_for_function("localStorage.chainlens_q == null", timeout=15_000)  # delivered: nothing kept
    raw = srv.sql(f"SELECT count() AS n, uniqExact(event_id) AS u FROM events WHERE session_id = '{sid}' "
                  "AND name LIKE 'while_down%'")[0]
    assert int(raw["n"]) == int(raw["u"]) == 3  # each delivered once: no second copy waiting for a merge
    page.close()


@pytest.mark.parametrize("case", ["dnt", "gpc", "consent"])
def test_do_not_track_gpc_and_consent_send_and_store_nothing(env: dict[str, Any], case: str) -> None:
    pages, tag = env["pages"], env["tag"]
    init = {"dnt": "Object.defineProperty(navigator, 'doNotTrack', {get: () => '1'})",
            "gpc": "Object.defineProperty(navigator, 'globalPrivacyControl', {get: () => true})",
            "consent": ""}[case]
    stub_consent = "<script>" + STUB + "chainlens('consent', false);</script>" if case == "consent" else ""
    pages.routes[f"/private-{case}"] = (html(tag, head=stub_consent, body="<button id=b>x</button>"), {})
    page = new_page(env)
    if init:
        page.add_init_script(init)
    beacons: list[str] = []
    page.on("request", lambda r: beacons.append(r.url) if r.url.endswith("/e") else None)
    page.goto(pages.origin + f"/private-{case}")
    page.wait_for_function("typeof window.chainlens === 'function' && !window.chainlens.q")
    page.evaluate("chainlens('step', 'cart'); chainlens('obstacle', 'account_required')")
    page.click("#b")
    page.close(run_before_unload=True)
    time.sleep(1)
    assert beacons == []
    assert env["srv"].sql(f"SELECT count() AS n FROM events WHERE url LIKE '%/private-{case}'")[0]["n"] in (0, "0")


def test_strict_csp_without_unsafe_eval_works_with_the_sri_tag(env: dict[str, Any]) -> None:
    pages, tag, srv = env["pages"], env["tag"], env["srv"]
    stub_hash = base64.b64encode(hashlib.sha256(STUB.encode()).digest()).decode()
    csp = (f"default-src 'none'; script-src {srv.url} 'sha256-{stub_hash}'; connect-src {srv.url}; "
           "require-trusted-types-for 'script'")
    assert 'integrity="sha384-' in tag and 'crossorigin="anonymous"' in tag
    pages.routes["/csp"] = (html(tag, body='<button data-chain-step="checkout.info">go</button>'),
                            {"Content-Security-Policy": csp})
    page = new_page(env)
    page.goto(pages.origin + "/csp")
    page.wait_for_function("window.chainlens && !window.chainlens.q")
    page.click("button")
    sid = session_id(page)
    page.close(run_before_unload=True)
    got = rows(env, sid, expect=2)
    assert ("step", "checkout.info") in [(r["type"], r["step"]) for r in got]
    violations = [m.text for m in page.console_messages if "Content Security Policy" in m.text]
    assert violations == []


def test_cookieless_sites_store_nothing_in_the_browser(env: dict[str, Any]) -> None:
    pages = env["pages"]
    pages.routes["/lite"] = (html(pages.lite_tag, '<button data-chain-step="cart">cart</button>'), {})
    page = new_page(env)
    page.goto(pages.origin + "/lite")
    page.wait_for_function("window.chainlens && !window.chainlens.q")
    page.click("button")
    assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('chainlens')).length") == 0
    assert page.evaluate("document.cookie") == ""
    page.close(run_before_unload=True)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        got = env["srv"].sql("SELECT type, step FROM events WHERE site_id = 'lite' AND type != 'track' ORDER BY ts")
        if len(got) >= 2:
            break
        time.sleep(0.3)
    assert [(r["type"], r["step"]) for r in got][:2] == [("page", ""), ("step", "cart")]


def test_two_tabs_never_send_the_same_stored_event_twice(env: dict[str, Any]) -> None:
    import json
    import uuid
    pages, tag = env["pages"], env["tag"]
    pages.routes["/tabs"] = (html(tag), {})
    context = env["browser"].new_context(user_agent=UA)
    sent: list[str] = []

    def watch(page: Any) -> Any:
        page.on("request", lambda r: sent.append(r.post_data or "") if r.url.endswith("/e") else None)
        return page

    first = watch(context.new_page())
    first.goto(pages.origin + "/tabs")
    first.wait_for_function("window.chainlens && !window.chainlens.q")
    now = int(time.time() * 1000)
    stored = [{"id": str(uuid.uuid4()), "type": "track", "ts": now, "sid": "tabs", "aid": "tabs", "sn": 1,
               "name": f"kept_{i}"} for i in range(5)]
    first.evaluate(f"localStorage.chainlens_q = {json.dumps(json.dumps(stored))!s}")
    second = watch(context.new_page())
    second.goto(pages.origin + "/tabs")  # its start-up retry takes the stored events
    second.wait_for_function("window.chainlens && !window.chainlens.q")
    first.evaluate("window.dispatchEvent(new Event('online'))")  # finds them gone
    second.evaluate("window.dispatchEvent(new Event('online'))")
    assert len(rows(env, "tabs", expect=5)) == 5
    for event in stored:
        assert sum(body.count(event["id"]) for body in sent) == 1
    context.close()


def test_consent_given_mid_page_sends_that_page_and_is_remembered(env: dict[str, Any]) -> None:
    pages = env["pages"]
    pages.routes["/asks"] = (html(pages.asks_tag, "<button id=b>ok</button>"), {})
    pages.routes["/asks/next"] = (html(pages.asks_tag), {})
    page = new_page(env)
    beacons: list[str] = []
    page.on("request", lambda r: beacons.append(r.post_data or "") if r.url.endswith("/e") else None)
    page.goto(pages.origin + "/asks")
    page.wait_for_function("window.chainlens && !window.chainlens.q")
    page.evaluate("chainlens('obstacle', 'before_consent')")
    page.wait_for_timeout(3500)  # past the interval flush: nothing may leave before consent
    assert beacons == [] and page.evaluate("localStorage.length") == 0
    page.evaluate("chainlens('consent', true); chainlens('step', 'cart')")
    sid = session_id(page)
    page.goto(pages.origin + "/asks/next")  # no new consent asked for
    page.wait_for_function("window.chainlens && !window.chainlens.q")
    page.close(run_before_unload=True)
    got = rows(env, sid, expect=5)
    seen = [(r["type"], r["name"] or r["step"], r["url"].rsplit("/", 1)[-1]) for r in got if r["name"] != "step_time"]
    assert seen[:3] == [("page", "", "asks"), ("obstacle", "before_consent", "asks"), ("step", "cart", "asks")]
    assert ("page", "", "next") in seen  # the next page is sent: consent was remembered
