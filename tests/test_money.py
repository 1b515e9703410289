"""Money strings as shops push them (chainlens/core/money.py), and what an unreadable one costs."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chainlens.core import money
from ingestion.figures import parameters, rows
from ingestion.imports import import_lines
from ingestion.rollup import rollup
from tests.conftest import event

# input → (stored value, currency taken from it); None: not read, recorded as a drop.
FORMATS = [
    ("59.90", 59.9, ""), ("59,90", 59.9, ""), ("59,9", 59.9, ""), ("1299", 1299.0, ""),
    ("1,299.00", 1299.0, ""), ("1.299,00", 1299.0, ""), ("1 299,00", 1299.0, ""), ("1'299.00", 1299.0, ""),
    ("1\u00a0299,00\u00a0€", 1299.0, "EUR"), ("1\u202f299,00 €", 1299.0, "EUR"), ("1299,00", 1299.0, ""),
    ("€ 59,90", 59.9, "EUR"), ("€59.90", 59.9, "EUR"), ("59.90 EUR", 59.9, "EUR"), ("EUR 1.299,00", 1299.0, "EUR"),
    ("$1,299.50", 1299.5, ""), ("US$ 1,299.50", 1299.5, "USD"), ("£1,299.50", 1299.5, "GBP"),
    ("R$ 1.299,90", 1299.9, "BRL"), ("CHF 1'299.00", 1299.0, "CHF"), ("1.299.000,50", 1299000.5, ""),
    ("1,299,000", 1299000.0, ""), ("-12,50 €", -12.5, "EUR"), ("1 299", 1299.0, ""), ("0.5", 0.5, ""),
    ("1,299", None, ""), ("1.299", None, ""), ("abc", None, ""), ("12 34", None, ""), ("1,2,3", None, ""),
    ("99.", None, ""), ("€", None, ""), ("1,299.5.0", None, ""), ("59.90 EUR USD", None, ""),
    ("EUR 59.90 EUR", None, ""),
]


@pytest.mark.parametrize(("text", "value", "currency"), FORMATS, ids=[f[0] for f in FORMATS])
def test_money_as_it_is_written(text: str, value: float | None, currency: str) -> None:
    got = money.read(text)
    assert got.value == value
    assert (got.problem == "") == (value is not None)
    if value is not None:
        assert got.currency == currency


STYLES = [  # (thousands separator, decimal mark) as locales write them
    (",", "."), (".", ","), (" ", ","), ("\u00a0", ","), ("'", "."), ("", "."), ("", ",")]


@given(cents=st.integers(min_value=0, max_value=10**11), style=st.sampled_from(STYLES),
       mark=st.sampled_from(["", "€ ", "EUR ", " EUR", " €", "$"]))
def test_every_locale_style_reads_back_its_amount(cents: int, style: tuple[str, str], mark: str) -> None:
    group, decimal = style
    whole = f"{cents // 100:,}".replace(",", group)
    text = f"{whole}{decimal}{cents % 100:02d}"
    text = mark + text if not mark.startswith(" ") else text + mark
    got = money.read(text)
    assert got.value == pytest.approx(cents / 100, abs=1e-9), text
    assert got.currency == ("EUR" if "E" in mark or "€" in mark else "")


def test_an_order_whose_value_cannot_be_read_is_counted_apart(db: Any, settings: Any) -> None:
    """Through `chainlens import`'s reader: the order counts, its revenue is unknown, and the
    headline figure says so beside the revenue it does know."""
    site = settings.site("demo")
    start = int(time.time() * 1000) - 2 * 86_400_000
    lines = []
    for i, value in enumerate(["1,299.00", "€ 59,90", "1,299"]):
        for n, step in enumerate(["cart", "purchase"]):
            lines.append(orjson.dumps(event(step=step, sid=f"s-{i}", ts=start + i * 60_000 + n * 1000,
                                            props={"value": value, "order_id": f"o-{i}"} if n else {})))
    answer = import_lines(db, lines, site=site)
    assert answer["accepted"] == 6 and [e["code"] for e in answer["errors"]] == ["dropped"]
    rollup(db, settings, now=dt.datetime.now(dt.UTC))
    day = dt.datetime.fromtimestamp(start / 1000, dt.UTC).date()
    week = parameters(site, start=day - dt.timedelta(days=1), end=day + dt.timedelta(days=1))
    (headline,) = rows(db, "headline", week)
    assert headline["orders"] == 3 and headline["orders_value_unknown"] == 1
    assert headline["revenue"] == 1358.9 and headline["currency"] == "EUR"


def test_imported_events_take_their_device_from_ua_or_are_unknown(db: Any, settings: Any) -> None:
    from tests.conftest import BROWSER_UA, MOBILE_UA

    site = settings.site("demo")
    ts = int(time.time() * 1000) - 86_400_000
    lines = [orjson.dumps(event(step="cart", sid=f"u-{i}", ts=ts, **({"ua": ua} if ua else {})))
             for i, ua in enumerate([MOBILE_UA, BROWSER_UA, "", "Googlebot/2.1 (+http://www.google.com/bot.html)"])]
    assert import_lines(db, lines, site=site)["accepted"] == 4
    got = dict(db.query("SELECT session_id, tuple(device, is_bot) FROM events WHERE session_id LIKE 'u-%'")
               .result_rows)
    assert got["u-0"] == ("mobile", False) and got["u-1"] == ("desktop", False)
    assert got["u-2"] == ("unknown", False) and got["u-3"][1] is True
