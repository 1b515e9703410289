"""product_daily and search_daily against sessions counted by hand (docs/metrics.md, "Products"
and "Site search"), and the items and search terms as the collector stores them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ingestion.rollup import rollup
from tests.test_rollups import NOW, ev, load, reset, site_settings, table

SHOES = {"item_id": "101", "item_name": "Trail runner shoes", "price": 89}
SOCKS = {"item_id": "103", "item_name": "Merino socks", "price": "14,50 €"}
TENT = {"item_id": "113", "item_name": "Limited edition tent", "price": 349}
SHOP = "https://shop.example"


def sessions() -> list[Any]:
    order = [{**SHOES, "quantity": 2}, SOCKS]
    return [
        # P1 searches, views the shoes, carts two pairs and socks, buys them; the pixel sends the
        # purchase again under another event id: the order counts once.
        ev("P1", 0, "page", "discover", url=f"{SHOP}/"),
        ev("P1", 1, "page", "search", url=f"{SHOP}/search?q=Trail+%20Shoes&page=2"),
        ev("P1", 2, "step", "select", props={"items": [SHOES]}),
        ev("P1", 4, "step", "cart", props={"items": order, "search_term": "not a search step"}),
        ev("P1", 6, "step", "checkout.info", props={"items": order}),
        ev("P1", 9, "step", "purchase", props={"items": order}, order_id="o-1", value=192.5),
        ev("P1", 9.1, "step", "purchase", props={"items": order}, order_id="o-1", value=192.5),
        # P2, on a phone: a GA4 search event and its page, one search for "tent"; then it leaves.
        ev("P2", 0, "step", "search", props={"search_term": "  Tent "}, device="mobile"),
        ev("P2", 0.01, "page", "search", url=f"{SHOP}/search?s=tent", device="mobile"),
        # P3 searches socks, views and carts them, leaves at shipping with them in the checkout.
        ev("P3", 0, "page", "search", url=f"{SHOP}/search?q=socks"),
        ev("P3", 1, "step", "select", props={"items": [SOCKS]}),
        ev("P3", 2, "step", "cart", props={"items": [SOCKS]}),
        ev("P3", 3, "step", "checkout.shipping", props={"items": [SOCKS]}),
        # P4 views the tent, searches tent, then socks, and leaves from the second search.
        ev("P4", 0, "step", "select", props={"items": [TENT, {"item_name": "no id"}]}),
        ev("P4", 1, "page", "search", url=f"{SHOP}/search?q=tent"),
        ev("P4", 2, "page", "search", url=f"{SHOP}/search?q=socks#top"),
        ev("P4", 3, "track", "search", "engage"),
    ]


def test_products_and_search_terms_by_hand(db: Any, tmp_path: Path) -> None:
    reset(db)
    settings = site_settings(tmp_path)
    load(db, settings, sessions())
    rollup(db, settings, now=NOW)

    products = {r["item_id"]: r for r in table(db, "product_daily", "device = 'all' AND segment = 'all'")}
    assert set(products) == {"101", "103", "113"}  # an item without an id is not a product
    got = {k: (r["item_name"], r["viewed"], r["carted"], r["checkout_abandoned"], r["purchased"], r["units"],
               r["revenue"]) for k, r in products.items()}
    assert got == {"101": ("Trail runner shoes", 1, 1, 0, 1, 2.0, 178.0),
                   "103": ("Merino socks", 1, 2, 1, 1, 1.0, 14.5),
                   "113": ("Limited edition tent", 1, 0, 0, 0, 0.0, 0.0)}

    terms = {r["term"]: r for r in table(db, "search_daily", "device = 'all' AND segment = 'all'")}
    got = {t: (r["searches"], r["sessions"], r["exits"], r["orders"]) for t, r in terms.items()}
    assert got == {"trail shoes": (1, 1, 0, 1), "tent": (2, 2, 1, 0), "socks": (2, 2, 1, 0)}
    mobile = {r["term"]: (r["sessions"], r["exits"]) for r in table(db, "search_daily", "device = 'mobile' "
                                                                      "AND segment = 'all'")}
    assert mobile == {"tent": (1, 1)}

    # The term is kept on the search step only, and the URL keeps no query string.
    (stored,) = db.query("SELECT groupUniqArray(step) FROM events WHERE mapContains(props, 'search_term')"
                         ).result_rows[0]
    assert stored == ["search"]
    assert db.query("SELECT count() FROM events WHERE position(url, '?') > 0").result_rows[0][0] == 0
