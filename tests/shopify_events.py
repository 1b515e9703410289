"""Shopify standard customer events, shaped after the published types.

The shapes follow `@shopify/web-pixels-extension` 2.18.0
(`build/ts/types/PixelEvents/index.d.ts`): every event has `clientId`,
`context` (document, navigator, window snapshots), `data`, `id`, `name`,
`seq`, `timestamp` (ISO string) and `type` ("standard"); money is
`MoneyV2 {amount: number, currencyCode}`.
"""

from __future__ import annotations

import datetime as dt
import itertools
from typing import Any

_seq = itertools.count(1)


def money(amount: float, currency: str = "EUR") -> dict[str, Any]:
    return {"amount": amount, "currencyCode": currency}


def location(origin: str, path: str) -> dict[str, Any]:
    host = origin.split("://", 1)[1]
    return {"hash": "", "host": host, "hostname": host.split(":")[0], "href": origin + path, "origin": origin,
            "pathname": path, "port": host.split(":")[1] if ":" in host else "",
            "protocol": origin.split(":")[0] + ":", "search": ""}


def context(origin: str, path: str, referrer: str = "") -> dict[str, Any]:
    loc = location(origin, path)
    return {
        "document": {"characterSet": "UTF-8", "location": loc, "referrer": referrer, "title": "Shop"},
        "navigator": {"cookieEnabled": True, "language": "en", "languages": ["en"], "userAgent": "Mozilla/5.0"},
        "window": {"innerHeight": 800, "innerWidth": 1280, "location": loc, "origin": origin, "outerHeight": 900,
                   "outerWidth": 1280, "pageXOffset": 0, "pageYOffset": 0,
                   "screen": {"height": 900, "width": 1280}, "screenX": 0, "screenY": 0, "scrollX": 0,
                   "scrollY": 0},
    }


def variant(price: float = 49.9) -> dict[str, Any]:
    return {
        "id": "44871623", "image": {"src": "https://cdn.example/shoe.jpg"}, "price": money(price),
        "product": {"id": "8812", "title": "Trail shoe", "type": "Shoes", "untranslatedTitle": "Trail shoe",
                    "url": "/products/trail-shoe", "vendor": "Acme"},
        "sku": "TS-42", "title": "42", "untranslatedTitle": "42",
    }


def cart_line(quantity: int = 1, price: float = 49.9) -> dict[str, Any]:
    return {"cost": {"totalAmount": money(price * quantity)}, "merchandise": variant(price), "quantity": quantity}


def checkout(*, order_id: str | None = None, shipping: str | None = None, paid: bool = False) -> dict[str, Any]:
    delivery = None
    if shipping:
        delivery = {"selectedDeliveryOptions": [{
            "cost": money(10.0), "costAfterDiscounts": money(10.0), "description": None, "handle": "express-1",
            "title": shipping, "type": "shipping"}]}
    line = {"discountAllocations": [], "finalLinePrice": money(49.9), "id": "li-1", "properties": [], "quantity": 1,
            "sellingPlanAllocation": None, "title": "Trail shoe", "variant": variant()}
    return {
        "attributes": [], "billingAddress": None, "buyerAcceptsEmailMarketing": False,
        "buyerAcceptsSmsMarketing": False, "currencyCode": "EUR", "delivery": delivery, "discountApplications": [],
        "discountsAmount": money(0.0), "email": None, "lineItems": [line],
        "localization": {"country": {"isoCode": "DE"}, "language": {"isoCode": "de"},
                         "market": {"handle": "de", "id": "m-1"}},
        "order": {"customer": None, "id": order_id} if order_id else None, "phone": None, "shippingAddress": None,
        "shippingLine": {"price": money(10.0)} if shipping else None, "smsMarketingPhone": None,
        "subtotalPrice": money(49.9), "token": "c1-token", "totalPrice": money(59.9 if shipping else 49.9),
        "totalTax": money(9.57),
        "transactions": [{"amount": money(59.9), "gateway": "shopify_payments",
                          "paymentMethod": {"name": "Visa", "type": "creditCard"}}] if paid else [],
    }


def event(name: str, data: dict[str, Any], *, origin: str, path: str, at: dt.datetime) -> dict[str, Any]:
    seq = next(_seq)
    return {"clientId": "b5f3c0de-client", "context": context(origin, path), "data": data,
            "id": f"sh-{seq}", "name": name, "seq": seq,
            "timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"), "type": "standard"}


def walk(origin: str, order_id: str) -> list[list[dict[str, Any]]]:
    """A shopper's pages from a search to the order status page; each inner list is one page load."""
    t = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)

    def at(seconds: int) -> dt.datetime:
        return t + dt.timedelta(seconds=seconds)

    return [
        [event("page_viewed", {}, origin=origin, path="/search", at=at(0)),
         event("search_submitted", {"searchResult": {"query": "shoes", "productVariants": [variant()]}},
               origin=origin, path="/search", at=at(1))],
        [event("page_viewed", {}, origin=origin, path="/products/trail-shoe", at=at(10)),
         event("product_viewed", {"productVariant": variant()}, origin=origin, path="/products/trail-shoe",
               at=at(11)),
         event("product_added_to_cart", {"cartLine": cart_line()}, origin=origin, path="/products/trail-shoe",
               at=at(20))],
        [event("page_viewed", {}, origin=origin, path="/checkouts/cn/c1/information", at=at(30)),
         event("checkout_started", {"checkout": checkout()}, origin=origin, path="/checkouts/cn/c1/information",
               at=at(31)),
         event("checkout_contact_info_submitted", {"checkout": checkout()}, origin=origin,
               path="/checkouts/cn/c1/information", at=at(40)),
         event("checkout_address_info_submitted", {"checkout": checkout()}, origin=origin,
               path="/checkouts/cn/c1/information", at=at(50)),
         event("checkout_shipping_info_submitted", {"checkout": checkout(shipping="Express")}, origin=origin,
               path="/checkouts/cn/c1/shipping", at=at(60)),
         event("payment_info_submitted", {"checkout": checkout(shipping="Express", paid=True)}, origin=origin,
               path="/checkouts/cn/c1/payment", at=at(70))],
        [event("page_viewed", {}, origin=origin, path="/checkouts/cn/c1/thank-you", at=at(80)),
         event("checkout_completed", {"checkout": checkout(order_id=order_id, shipping="Express", paid=True)},
               origin=origin, path="/checkouts/cn/c1/thank-you", at=at(81))],
    ]
