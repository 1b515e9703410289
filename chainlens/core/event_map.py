"""The default event map: the ecommerce events a shop's tags already send, by the chain step they
mean (docs/snippet.md, "What the snippet tags by itself"). A site keeps those whose step its chain
has; `[sites.events]` adds or overrides (Site.event_steps)."""

from __future__ import annotations

LIST_VIEWS = ("view_item_list", "collection_viewed")  # GA4's and Shopify's list pages
# The ecommerce events a shop's tags already send, by the step they mean (docs/snippet.md):
# GA4's recommended events and Shopify's standard customer events. A site's chain keeps the
# ones whose step it has; `[sites.events]` adds or overrides.
DEFAULT_EVENTS: dict[str, tuple[str, ...]] = {
    # A category or collection page is browsing, not a search (it would feed the researcher segment).
    "discover": LIST_VIEWS,
    "search": ("view_search_results", "search", "search_submitted"),
    "select": ("view_item", "select_item", "product_viewed"),
    "cart": ("add_to_cart", "view_cart", "product_added_to_cart", "cart_viewed"),
    "checkout.info": ("begin_checkout", "checkout_started", "checkout_contact_info_submitted"),
    "checkout.shipping": ("add_shipping_info", "checkout_address_info_submitted"),
    "checkout.payment": ("add_payment_info", "checkout_shipping_info_submitted"),
    "checkout.review": ("payment_info_submitted",),
}

CART_EVENTS = ("add_to_cart", "view_cart", "product_added_to_cart", "cart_viewed")
CHECKOUT_STARTED = ("begin_checkout", "checkout_started")


def default_steps(chain: tuple[str, ...], *, checkout_from: str, product_step: str) -> dict[str, str]:
    """Event name → step for a chain: the defaults whose step it has, the cart and checkout-start
    events on its own cart step and the one after, list pages on its first step when it has no
    `discover`, and the purchase on its last step."""
    after_cart = chain[chain.index(checkout_from) + 1]
    wanted = {name: step for step, names in DEFAULT_EVENTS.items() for name in names}
    out = {name: step for name, step in wanted.items() if step in chain}
    for name in CART_EVENTS:
        out.setdefault(name, checkout_from)
    for name in CHECKOUT_STARTED:
        out.setdefault(name, after_cart)
    if product_step in chain and chain.index(product_step) > 0:
        for name in LIST_VIEWS:  # a chain without `discover`: its first step, the browsing one
            out.setdefault(name, chain[0])
    out["purchase"] = out["checkout_completed"] = chain[-1]
    return out
