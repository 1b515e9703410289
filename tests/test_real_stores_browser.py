"""Stores tagged the way platforms and tag managers tag them, in real Chromium, into ClickHouse."""

from __future__ import annotations

from typing import Any

import pytest

from tests import shopify_events
from tests.test_snippet_browser import env, html, new_page, rows, session_id  # noqa: F401  (env: a fixture)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

# A platform GA4 plugin: string values and prices, an integer transaction id, `ecommerce: null`
# resets before each push, both the gtag() and the dataLayer.push() forms.
GTAG = "<script>window.dataLayer=window.dataLayer||[];function gtag(){dataLayer.push(arguments)}</script>"
PLUGIN_HEAD = GTAG + (
    "<script>dataLayer.push({ecommerce:null});"
    "dataLayer.push({event:'view_item',ecommerce:{currency:'EUR',value:'49.90',"
    "items:[{item_id:'42',item_name:'Shoes',price:'49.90',quantity:'1'}]}});</script>")
WALK = [
    "gtag('event','add_to_cart',{currency:'EUR',value:'49.90',items:[{item_id:'42',price:'49.90'}]})",
    "dataLayer.push({ecommerce:null}); dataLayer.push({event:'begin_checkout',ecommerce:{value:'49.90'}})",
    "dataLayer.push({ecommerce:null}); "
    "dataLayer.push({event:'add_shipping_info',ecommerce:{shipping_tier:'express',value:'59.90'}})",
    "gtag('event','add_payment_info',{payment_type:'card',value:'59.90'})",
    "chainlens('identify', 4711)",
    "dataLayer.push({ecommerce:null}); dataLayer.push({event:'purchase',ecommerce:{transaction_id:10432,"
    "value:'59.90',tax:'9.57',shipping:'10.00',currency:'EUR',items:[{item_id:'42',price:'49.90'}]}})",
]
BLOCK_STORAGE = """
    Object.defineProperty(window, 'localStorage', {get() { throw new DOMException('blocked', 'SecurityError') }});
    Object.defineProperty(Document.prototype, 'cookie', {
        get() { throw new DOMException('blocked', 'SecurityError') },
        set(v) { throw new DOMException('blocked', 'SecurityError') }});
"""


@pytest.mark.parametrize("storage", ["allowed", "throws"])
def test_a_platform_tagged_walk_lands_every_step_and_the_purchase(env: dict[str, Any], storage: str) -> None:  # noqa: F811
    pages, tag, srv = env["pages"], env["tag"], env["srv"]
    base = f"/plugin-{storage}"
    pages.routes[base] = (html(tag, "<p>shoes</p>", head=PLUGIN_HEAD), {})
    pages.routes[base + "/checkout"] = (html(tag, "<p>checkout</p>", head=GTAG), {})
    page = new_page(env)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    if storage == "throws":
        page.add_init_script(BLOCK_STORAGE)
    page.goto(pages.origin + base)
    page.wait_for_function("window.chainlens && !window.chainlens.q")
    page.evaluate(WALK[0])
    page.goto(pages.origin + base + "/checkout")  # a second page load: still one session
    page.wait_for_function("window.chainlens && !window.chainlens.q")
    for line in WALK[1:]:
        page.evaluate(line)
    page.close(run_before_unload=True)
    assert errors == []
    sid = _session_of(srv, base)
    got = rows(env, sid, expect=9)
    steps = [r["step"] for r in got if r["type"] == "step"]
    assert steps == ["select", "cart", "checkout.info", "checkout.shipping", "checkout.payment", "purchase"]
    purchase = next(r for r in got if r["step"] == "purchase")
    assert (purchase["value"], purchase["currency"], purchase["order_id"]) == (59.9, "EUR", "10432")
    assert purchase["user_id"] == "4711"
    sessions = srv.sql(f"SELECT uniqExact(session_id) AS n FROM events WHERE url LIKE '%{base}%'")
    assert int(sessions[0]["n"]) == 1


def _session_of(srv: Any, base: str) -> str:
    import time
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        got = srv.sql(f"SELECT session_id FROM events WHERE url LIKE '%{base}' AND type = 'page' LIMIT 1")
        if got:
            return str(got[0]["session_id"])
        time.sleep(0.3)
    raise AssertionError(f"no page view of {base} stored")


def test_a_tab_hidden_after_1_5_s_reports_its_visible_time(env: dict[str, Any]) -> None:  # noqa: F811
    pages, tag = env["pages"], env["tag"]
    pages.routes["/visible"] = (html(tag, body_attrs='data-chain-step="cart"'), {})
    page = new_page(env)
    page.goto(pages.origin + "/visible")
    page.wait_for_function("window.chainlens && !window.chainlens.q")
    sid = session_id(page)
    page.wait_for_timeout(1500)
    # What the browser does when a shopper switches apps on a phone: the page becomes hidden.
    page.evaluate("Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true});"
                  "document.dispatchEvent(new Event('visibilitychange'))")
    got = rows(env, sid, expect=2)
    (timing,) = [r for r in got if r["name"] == "step_time"]
    assert timing["step"] == "cart" and 1400 <= int(timing["props"]["active_ms"]) < 5000
    page.close()


def test_a_page_restored_from_the_back_forward_cache_counts_as_a_page_view(env: dict[str, Any]) -> None:  # noqa: F811
    pages, tag = env["pages"], env["tag"]
    pages.routes["/bf/a"] = (html(tag, "<p>a</p>", head=(
        "<script>addEventListener('pageshow', function (e) { if (e.persisted) window.restored = 1 })</script>")), {})
    page = new_page(env)
    page.goto(pages.origin + "/bf/a")
    page.wait_for_function("window.chainlens && !window.chainlens.q")
    sid = session_id(page)
    # Playwright's Chromium runs with the back/forward cache off, so the restore is the event
    # the browser fires for one: `pageshow` with `persisted` on the same, living page.
    page.evaluate("window.dispatchEvent(new Event('pagehide'));"
                  "window.dispatchEvent(new PageTransitionEvent('pageshow', {persisted: true}))")
    assert page.evaluate("window.restored") == 1
    page.evaluate("window.dispatchEvent(new Event('pagehide'))")  # flush now
    got = rows(env, sid, expect=2)
    views = [r["url"].rsplit("/bf/", 1)[-1] for r in got if r["type"] == "page"]
    assert views == ["a", "a"]
    page.close()


def test_a_batch_answered_413_is_split_and_lands_whole(env: dict[str, Any]) -> None:  # noqa: F811
    pages, tag, srv = env["pages"], env["tag"], env["srv"]
    pages.routes["/split"] = (html(tag), {})
    page = new_page(env)
    answered: list[int] = []

    def once_too_large(route: Any) -> None:
        if not answered:
            answered.append(413)
            route.fulfill(status=413, content_type="application/json", body='{"error": "too large"}',
                          headers={"Access-Control-Allow-Origin": pages.origin})
        else:
            answered.append(0)
            route.continue_()

    page.goto(pages.origin + "/split")
    page.wait_for_function("window.chainlens && !window.chainlens.q")
    sid = session_id(page)
    page.wait_for_timeout(3500)  # the page view is delivered on its own
    page.route(srv.url + "/e", once_too_large)
    page.evaluate("for (var i = 0; i < 6; i++) chainlens('track', 'item_' + i)")
    # Sync Playwright runs route handlers only while the test calls into it: wait in the page.
    for _ in range(100):
        if len(answered) >= 3:
            break
        page.wait_for_timeout(200)
    got = rows(env, sid, expect=7)
    assert sorted(r["name"] for r in got if r["name"].startswith("item_")) == [f"item_{i}" for i in range(6)]
    assert answered[0] == 413 and len(answered) >= 3  # refused once, then the two halves
    page.close()


# Shopify's pixel runtime, stood in: a frame sandboxed without allow-same-origin (an opaque
# origin, as Shopify's), `analytics.subscribe`, and `browser.localStorage` answered by the
# top frame through postMessage, asynchronously, as Shopify's proxy does.
SHOPIFY_HOST = """<!doctype html><html><body><script>
addEventListener('message', function (e) {
  if (e.data === 'ready') { window.pixelReady = 1; return; }
  var rpc = e.data && e.data.rpc;
  if (!rpc) return;
  var value = null;
  try { value = localStorage[rpc.op].apply(localStorage, rpc.args); } catch (x) { value = null; }
  e.source.postMessage({reply: rpc.id, value: value === undefined ? null : value}, '*');
});
window.publish = function (events) {
  document.querySelector('iframe').contentWindow.postMessage({events: events}, '*');
};
</script><iframe sandbox="allow-scripts" src="/shopify/sandbox"></iframe></body></html>"""
SHOPIFY_SANDBOX = """<!doctype html><html><body><script>
var subscribers = {}, waiting = {}, calls = 0;
self.analytics = {subscribe: function (name, fn) { (subscribers[name] = subscribers[name] || []).push(fn);
  return function () { return true; }; }};
function call(op, args) {
  return new Promise(function (resolve) { var id = ++calls; waiting[id] = resolve;
    parent.postMessage({rpc: {id: id, op: op, args: args}}, '*'); });
}
self.browser = {localStorage: {
  getItem: function (k) { return call('getItem', [k]); },
  setItem: function (k, v) { return call('setItem', [k, v]); },
  removeItem: function (k) { return call('removeItem', [k]); }}};
addEventListener('message', function (e) {
  if (e.data && e.data.reply) { waiting[e.data.reply](e.data.value); delete waiting[e.data.reply]; }
  if (e.data && e.data.events) e.data.events.forEach(function (ev) {
    (subscribers[ev.name] || []).forEach(function (fn) { fn(ev); }); });
});
</script><script>%PIXEL%</script><script>parent.postMessage('ready', '*');</script></body></html>"""


def test_the_shopify_pixel_lands_the_sites_chain_with_the_purchase(env: dict[str, Any]) -> None:  # noqa: F811
    pages, srv = env["pages"], env["srv"]
    pixel = srv.cli("snippet", "demo", "--shopify").stdout
    assert "analytics.subscribe" in pixel and "<script" not in pixel  # pasted as is into Shopify's admin
    pages.routes["/shopify/host"] = (SHOPIFY_HOST, {})
    pages.routes["/shopify/sandbox"] = (SHOPIFY_SANDBOX.replace("%PIXEL%", pixel), {})
    page = new_page(env)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    answers: list[int] = []
    # One page load per group of events: the pixel's frame goes with each page, its storage stays.
    for events in shopify_events.walk(pages.origin, order_id="5912345678901"):
        page.goto(pages.origin + "/shopify/host")
        page.wait_for_function("window.pixelReady === 1")
        with page.expect_response(lambda r: r.url == srv.url + "/e") as sent:
            page.evaluate("events => publish(events)", events)
        answers.append(sent.value.status)
        assert sent.value.request.header_value("origin") == "null"  # an opaque origin, as in Shopify's sandbox
    assert answers == [202] * 4 and errors == []
    sid = session_id(page)
    got = rows(env, sid, expect=13)
    assert len({r["id"] for r in got}) == len(got) == 13
    steps = [r["step"] for r in got if r["type"] == "step"]
    assert steps == ["search", "select", "cart", "checkout.info", "checkout.info", "checkout.shipping",
                     "checkout.payment", "checkout.review", "purchase"]
    purchase = next(r for r in got if r["step"] == "purchase")
    assert (purchase["value"], purchase["currency"], purchase["order_id"]) == (59.9, "EUR", "5912345678901")
    assert purchase["url"] == pages.origin + "/checkouts/cn/c1/thank-you"
    # The products report's items (price and quantity) and the site search's term.
    assert purchase["props"]["item_amounts"] == "[[49.9,1.0]]"
    search = next(r for r in got if r["step"] == "search" and r["type"] == "step")
    assert search["props"]["search_term"] == "shoes"
    views = [r["url"].removeprefix(pages.origin) for r in got if r["type"] == "page"]
    assert views == ["/search", "/products/trail-shoe", "/checkouts/cn/c1/information",
                     "/checkouts/cn/c1/thank-you"]
    page.close()
