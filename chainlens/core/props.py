"""Props as stored: a flat Map(String, String), numbers in canonical text, money strings read as
money (chainlens/core/money.py), GA4 ecommerce items kept as their count and first ten ids and
names (docs/snippet.md, "Ecommerce items")."""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import parse_qs

import orjson

from chainlens.core.fields import MAX_ID, MAX_PROP_VALUE, MONEY_PROPS, canonical, is_number, money_from

MAX_ITEMS = 10


def _items(items: list[Any], out: dict[str, str]) -> None:
    """Ecommerce items (GA4's `items`): their count, the first ten as [id, name] pairs in
    `item_list` (JSON) with their [price, quantity] in `item_amounts` (null where unreadable),
    and the first item's `in_stock`/`ship_days` for Fast Track In Stock unless the event sets
    them itself (docs/snippet.md, "Ecommerce items")."""
    listed, amounts = [], []
    for item in items[:MAX_ITEMS]:
        if isinstance(item, dict):
            ident, name = item.get("item_id", item.get("id")), item.get("item_name", item.get("name"))
            listed.append([as_text(ident)[:MAX_ID], str(name or "")[:100]])
            amounts.append([_amount(item.get("price")), _amount(item.get("quantity", 1))])
    out["items"] = str(len(items))
    if listed:
        out["item_list"] = orjson.dumps(listed).decode()
        out["item_amounts"] = orjson.dumps(amounts).decode()
    first = items[0] if items and isinstance(items[0], dict) else {}
    for key in ("in_stock", "ship_days"):
        value = first.get(key)
        if key not in out and (type(value) in (str, bool) or is_number(value)):
            out[key] = ("true" if value else "false") if type(value) is bool else as_text(value)[:MAX_PROP_VALUE]


def _amount(value: Any) -> float | None:
    """An item's price or quantity: a finite number not below zero, or a money string; else None."""
    amount = money_from(value).value if type(value) is str or is_number(value) else None
    return float(amount) if amount is not None and amount >= 0 else None


def search_term(props: dict[str, str], url: str, params: tuple[str, ...]) -> str:
    """What a shopper searched for (docs/metrics.md, "Site search"): the event's `search_term`,
    else the first of `params` in the page's query string; trimmed, lower case, one space
    between words, at most 100 characters."""
    term = props.get("search_term", "")
    if not term and params and "?" in url:
        query = parse_qs(url.split("#", 1)[0].split("?", 1)[1])
        term = next((query[p][0] for p in params if query.get(p)), "")
    return " ".join(term.lower().split())[:100]


def as_text(value: Any) -> str:
    """An id or value as text: numbers canonical (10432, never 10432.0), nothing as ""."""
    if type(value) is int:
        return str(value)
    if type(value) is float and math.isfinite(value):
        return canonical(value)
    return "" if value is None else str(value)


def stored_props(props: dict[str, Any] | None, dropped: list[tuple[str, str, Any]]) -> dict[str, str]:
    """Props as stored (Map(String, String)): numbers in canonical text, money strings as numbers
    (a currency they name fills `currency` when the props have none). A money string that cannot be
    read for sure is kept as sent and named in `dropped`: the event's value is then unknown."""
    if not props:
        return {}
    out: dict[str, str] = {}
    items = props.get("items")
    for key, item in props.items():
        if item is None or type(item) is list:
            continue
        if item is True or item is False:
            out[key] = "true" if item else "false"
        elif type(item) is str and key in MONEY_PROPS:
            amount = money_from(item)
            out[key] = item if amount.value is None else canonical(amount.value)
            if amount.value is None:
                dropped.append((f"props.{key}", amount.problem, item))
            elif amount.currency and not props.get("currency"):
                out["currency"] = amount.currency
        elif type(item) is str:
            out[key] = item
        else:
            out[key] = canonical(item)
    if type(items) is list:
        _items(items, out)
    return out
