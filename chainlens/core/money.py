"""Money as shops push it: "1,299.00", "1.299,00", "€ 59,90", "59.90 EUR" (docs/snippet.md, "Money").

A platform or a localized theme often formats an amount for display before pushing it:
thousands separators (`,` `.` a space `'`), a decimal comma, a currency symbol or an
ISO 4217 code before or after. `read` takes the number and, from a code or an
unambiguous symbol, the currency. What cannot be read for sure ("1,299" is 1299 in
English and 1.299 in German) is not guessed: it comes back with the problem, and the
event is stored without the amount and the problem recorded.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

# Symbols that name one currency. "$", "kr" and "¥" name several: they are read, not trusted.
SYMBOLS = {"€": "EUR", "£": "GBP", "₹": "INR", "₩": "KRW", "₽": "RUB", "₺": "TRY", "₪": "ILS", "zł": "PLN",
           "R$": "BRL", "US$": "USD", "CA$": "CAD", "A$": "AUD", "NZ$": "NZD", "HK$": "HKD", "CHF": "CHF"}
_ANY_SYMBOL = ("$", "¥", "kr", "Kč", "Ft", "lei", "₫", "฿", "₱", "₴")
_SPACES = "\u00a0\u202f\u2009 "  # no-break, narrow no-break, thin and plain spaces
_AFFIX = re.compile(
    r"^(?P<pre>[A-Z]{3}|" + "|".join(re.escape(s) for s in sorted({*SYMBOLS, *_ANY_SYMBOL}, key=len, reverse=True))
    + r")?\s*(?P<sign>[-−]?)\s*(?P<number>[0-9][0-9.,'\s]*?)\s*(?P<post>[A-Z]{3}|"
    + "|".join(re.escape(s) for s in sorted({*SYMBOLS, *_ANY_SYMBOL}, key=len, reverse=True)) + r")?$")
_GROUPED = r"[0-9]{{1,3}}(?:{sep}[0-9]{{3}})*"  # thousands grouped by `sep`


@dataclass(frozen=True, slots=True)
class Amount:
    value: float | None  # None: not readable for sure
    currency: str = ""  # from an ISO code or an unambiguous symbol, else ""
    problem: str = ""  # why `value` is None
    ambiguous: bool = False  # a number that reads two ways ("1,299"): never guessed


def read(text: str) -> Amount:
    """An amount written as a person would: the number, its currency if it says, or the problem."""
    cleaned = text.strip()
    for space in _SPACES[:-1]:
        cleaned = cleaned.replace(space, " ")
    match = _AFFIX.match(cleaned)
    if not match or (match["pre"] and match["post"]):
        return Amount(None, problem=f"{text[:40]!r} is not an amount")
    mark = match["pre"] or match["post"] or ""
    currency = mark if re.fullmatch(r"[A-Z]{3}", mark) else SYMBOLS.get(mark, "")
    number, problem = _number(match["number"].strip())
    if number is None:
        return Amount(None, currency, f"{text[:40]!r}: {problem}", ambiguous=problem.startswith("ambiguous"))
    return Amount(-number if match["sign"] else number, currency)


def _number(digits: str) -> tuple[float | None, str]:
    seps = [c for c in dict.fromkeys(digits) if not c.isdigit()]
    if not seps:
        return float(digits), ""
    if len(seps) > 2 or " " in digits and len(seps) == 2 and "'" in seps:
        return None, "mixes too many separators"
    if len(seps) == 2:  # the last one marks the decimals, the first groups thousands
        group, decimal = (seps[0], seps[1]) if digits.rfind(seps[0]) < digits.rfind(seps[1]) else (seps[1], seps[0])
        whole, _, cents = digits.rpartition(decimal)
        if decimal in (" ", "'") or not _grouped(whole, group) or not cents or len(cents) > 3:
            return None, "its separators do not group thousands and mark decimals"
        return _finite(whole.replace(group, "") + "." + cents)
    (sep,) = seps
    parts = digits.split(sep)
    if sep in (" ", "'"):  # only ever groups thousands
        return (_finite(digits.replace(sep, "")) if _grouped(digits, sep)
                else (None, "its separators do not group thousands"))
    if len(parts) == 2 and len(parts[1]) != 3:  # "59,90", "59.9": decimals
        return _finite(parts[0] + "." + parts[1]) if parts[1] else (None, "ends with a separator")
    if len(parts) > 2 and _grouped(digits, sep):  # "1,299,000": thousands
        return _finite(digits.replace(sep, ""))
    if len(parts) == 2:  # "1,299" or "1.299": a thousand and more, or one and a bit
        return None, f"ambiguous: {sep!r} may group thousands or mark decimals"
    return None, "its separators do not group thousands"


def _grouped(digits: str, sep: str) -> bool:
    return bool(re.fullmatch(_GROUPED.format(sep=re.escape(sep)), digits))


def _finite(text: str) -> tuple[float | None, str]:
    value = float(text)
    return (value, "") if math.isfinite(value) else (None, "too large")
