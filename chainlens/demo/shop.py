"""The demo storefront: a small shop whose pages carry the generated snippet.

Product list → product pages → cart → checkout info → shipping → payment →
optional review → confirmation, with the obstacles shops meet: an item out of
stock, a forced account step, a shipping cost revealed late, a declined card.
/switches breaks the payment page by hand (it then throws 'Stripe is not
defined' and cannot be paid), to watch the live early warning find it.
Pages tag steps the ways real shops do: URL rules, `data-chain-step`, GA4
`dataLayer` pushes and the page API.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from typing import Any

import jinja2
import orjson
from aiohttp import web
from markupsafe import Markup, escape

from chainlens.core.settings import Site
from chainlens.demo.shoppers import PRODUCTS
from sdk_js.render import snippet_tag

OUT_OF_STOCK = {113}
SHIPPING = 6.90
TAG = web.AppKey("snippet_tag", Markup)
SWITCHES = web.AppKey("switches", dict)


@functools.cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(loader=jinja2.PackageLoader("chainlens.demo", "templates"), autoescape=True)
    return env.get_template("shop.html")


def page(request: web.Request, title: str, content: str, *, head: str = "", body_step: str = "") -> web.Response:
    html = _template().render(title=title, content=Markup(content), head=Markup(head), snippet=request.app[TAG],
                              body_step=body_step)
    return web.Response(text=html, content_type="text/html")


async def index(request: web.Request) -> web.Response:
    cards = "".join(f'<div class="card"><a href="/product/{sku}">{name}</a><br>€{price:.2f}</div>'
                    for sku, (name, price) in PRODUCTS.items())
    return page(request, "New this season", f'<div class="grid">{cards}</div>')


async def search(request: web.Request) -> web.Response:
    q = request.query.get("q", "").lower()
    hits = [(sku, n) for sku, (n, _) in PRODUCTS.items() if q in n.lower()] or list(
        (sku, n) for sku, (n, _) in PRODUCTS.items())
    items = "".join(f'<li><a href="/product/{sku}">{name}</a></li>' for sku, name in hits)
    return page(request, "Search results", f"<ul>{items}</ul>",
                head="<script>dataLayer.push({event:'view_search_results'});</script>")


async def product(request: web.Request) -> web.Response:
    sku = int(request.match_info["sku"])
    if sku not in PRODUCTS:
        raise web.HTTPNotFound()
    name, price = PRODUCTS[sku]
    in_stock = sku not in OUT_OF_STOCK
    ship_days = 2 if sku % 2 else 4
    api = (f"chainlens('step','select',{{in_stock:{str(in_stock).lower()},ship_days:{ship_days}}});"
           + ("" if in_stock else f"chainlens('obstacle','out_of_stock',{{sku:'{sku}'}});"))
    buy = (f'<a class="button" href="/cart?sku={sku}">Add to cart</a>' if in_stock
           else '<p class="bad">Sorry, out of stock.</p>')
    delivery = f"ships in {ship_days} days" if in_stock else ""
    return page(request, name, f"<p>€{price:.2f} · {delivery}</p>{buy}"
                      f"<script>{api}</script>",
                head="<script>dataLayer.push({event:'view_item',"
                     f"ecommerce:{{currency:'EUR',value:{price},items:[{{item_id:'{sku}',price:{price}}}]}}}});</script>")


def _sku(request: web.Request) -> int:
    text = request.query.get("sku", "101")
    return int(text) if text.isdigit() and int(text) in PRODUCTS else 101


async def cart(request: web.Request) -> web.Response:
    sku = _sku(request)
    name, price = PRODUCTS.get(sku, PRODUCTS[101])
    # The cart's contents as a GA4 view_cart push (item ids and names reach "products in abandoned carts").
    items = orjson.dumps([{"item_id": str(sku), "item_name": name, "price": price}]).decode()
    return page(request, "Your cart", f"<p>{escape(name)}: €{price:.2f}</p>"
                f'<a class="button" data-chain-step="checkout.info" href="/checkout/info?sku={sku}">Checkout</a>',
                body_step="cart",
                head=f"<script>dataLayer.push({{event:'view_cart',ecommerce:{{currency:'EUR',value:{price},"
                     f"items:{items}}}}});</script>")


async def info(request: web.Request) -> web.Response:
    sku = escape(request.query.get("sku", "101"))  # echoed into the page: never markup
    return page(request, "Checkout: your details",
                '<p class="note">Please create an account to continue.</p>'
                # A form that carries a password posts it, never puts it in the URL.
                f'<form id="details" method="post" action="/checkout/shipping?sku={sku}">'
                '<label>E-mail <input name="email" type="email" required autocomplete="email"></label>'
                '<label>Password <input name="password" type="password" required minlength="8"></label>'
                '<label>Street and number <input name="address" required autocomplete="street-address"></label>'
                # A pattern stricter than the addresses shoppers write ("1010 AB", "SW1A 1AA").
                '<label>Postcode <input name="postcode" required pattern="[0-9]{5}" autocomplete="postal-code">'
                "</label>"
                # Optional, but the asterisk says otherwise.
                '<label>Phone * <input name="phone" type="tel" autocomplete="tel"></label>'
                "<button>Continue</button></form>"
                "<script>chainlens('obstacle','account_required');</script>")


# The shop's handler for the moment of risk (docs/interventions.md): a free-shipping offer, and
# what became of it. The risk script calls it in the treatment arm only, once per session.
OFFER = """<script>
chainlens('on', 'risk', function (info) {
  window.offers = (window.offers || 0) + 1;
  var box = document.createElement('p');
  box.id = 'offer'; box.className = 'note';
  box.innerHTML = 'Free shipping if you order now. <button id="take">Take it</button> ' +
    '<button id="skip">No thanks</button>';
  document.body.appendChild(box);
  document.getElementById('take').onclick = function () {
    chainlens('intervention', 'accepted', {offer: 'FREESHIP', cost: 4.95}); box.remove(); };
  document.getElementById('skip').onclick = function () {
    chainlens('intervention', 'dismissed', {offer: 'FREESHIP'}); box.remove(); };
});
</script>"""


async def shipping(request: web.Request) -> web.Response:
    sku = escape(request.query.get("sku", "101"))  # echoed into the page: never markup
    return page(request, "Checkout: shipping",
                f'<p class="note">Standard delivery: €{SHIPPING:.2f}</p>'
                f'<a class="button" href="/checkout/payment?sku={sku}">Continue to payment</a>'
                f"<script>chainlens('obstacle','shipping_cost_shown',{{amount:{SHIPPING}}});"
                "dataLayer.push({event:'add_shipping_info',ecommerce:{shipping_tier:'standard'}});</script>"
                + OFFER)


async def payment(request: web.Request) -> web.Response:
    sku = escape(request.query.get("sku", "101"))  # echoed into the page: never markup
    if request.app[SWITCHES]["payment_broken"]:
        # A payment provider's script that did not load: the page throws, and cannot be paid.
        return page(request, "Checkout: payment", "<p>Card number</p><button disabled>Pay</button>"
                    "<script>Stripe('pk_demo').elements();</script>")
    card = str((await request.post()).get("card", "")).replace(" ", "")
    if card and not card.endswith("0002"):
        raise web.HTTPFound(f"/checkout/review?sku={sku}")
    declined = bool(card)
    note = ('<p class="bad">Your card was declined.</p>'
            "<script>chainlens('obstacle','payment_declined');</script>") if declined else ""
    return page(request, "Checkout: payment",
                note + f'<form method="post" action="/checkout/payment?sku={sku}">'
                '<label>Card number <input name="card" required placeholder="4242 4242 4242 4242"></label>'
                "<p>(a card ending in 0002 is declined)</p><button>Pay</button></form>"
                "<script>dataLayer.push({event:'add_payment_info',ecommerce:{payment_type:'card'}});</script>"
                + OFFER)


async def review(request: web.Request) -> web.Response:
    sku = escape(request.query.get("sku", "101"))  # echoed into the page: never markup
    return page(request, "Checkout: review", f'<a class="button" href="/checkout/done?sku={sku}">Place order</a>')


async def done(request: web.Request) -> web.Response:
    sku = _sku(request)
    name, price = PRODUCTS.get(sku, PRODUCTS[101])
    total = price + SHIPPING
    items = orjson.dumps([{"item_id": str(sku), "item_name": name, "price": price, "quantity": 1}]).decode()
    return page(request, "Thank you!", "<p>Your order is on its way.</p><script>"
                f"chainlens('step','purchase',{{value:{total:.2f},currency:'EUR',order_id:'demo-'+Date.now(),"
                f"items:{items}}});</script>")


async def switches(request: web.Request) -> web.Response:
    state = request.app[SWITCHES]
    if request.method == "POST":
        state["payment_broken"] = (await request.post()).get("payment") == "broken"
        raise web.HTTPFound("/switches")
    broken = state["payment_broken"]
    return page(request, "Demo switches",
                f"<p>The payment page is <b id='payment-state'>{'broken' if broken else 'working'}</b>.</p>"
                '<form method="post" action="/switches">'
                f'<button name="payment" value="{"working" if broken else "broken"}">'
                f'{"Repair" if broken else "Break"} the payment page</button></form>'
                "<p>While it is broken, the demo's simulated shoppers on Mobile Safari cannot pay either; "
                "the dashboard's live panel shows the alert within minutes.</p>")


def create_shop_app(site: Site, *, public_url: str) -> web.Application:
    app = web.Application()
    app[TAG] = Markup(snippet_tag(site, public_url=public_url))
    app[SWITCHES] = {"payment_broken": False}
    app.router.add_get("/", index)
    app.router.add_get("/search", search)
    app.router.add_get("/product/{sku:\\d+}", product)
    app.router.add_get("/cart", cart)
    app.router.add_get("/checkout/info", info)
    app.router.add_route("*", "/checkout/shipping", shipping)
    app.router.add_route("*", "/checkout/payment", payment)
    app.router.add_get("/checkout/review", review)
    app.router.add_get("/checkout/done", done)
    app.router.add_route("*", "/switches", switches)
    return app


class ShopServer:
    """Runs the storefront on its own thread and event loop, beside the demo's work."""

    def __init__(self, site: Site, *, public_url: str, port: int) -> None:
        self.app = create_shop_app(site, public_url=public_url)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="storefront")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._runner = web.AppRunner(self.app, access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.close()

    @property
    def payment_broken(self) -> bool:
        return bool(self.app[SWITCHES]["payment_broken"])

    def start(self) -> ShopServer:
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
