"""The event contract's fields: one declaration of what a wire event may hold (docs/architecture.md,
"The event contract").

`FIELDS` is the only place a field's type, size and whether it is required are stated. From it
come the msgspec structs that decode a whole, valid beacon in C (the fast path) and the tolerant
per-field reader for anything else (chainlens/core/decoding.py), which converts what real tags
send in another JSON type (`value: "59.90"`, `transaction_id: 10432`) and drops a malformed
*optional* field instead of the event, reporting it. A new field or limit is one line here.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from chainlens.core import money

EVENT_TYPES = ("identify", "obstacle", "page", "step", "track")
SERVER_SOURCES = ("s2s", "import")  # the shop's back office: reports about orders, without a browser session
ORDER_SESSION = "order:"  # the session id of a back-office event that names only its order
NEEDS = {"step": "step", "obstacle": "name", "track": "name"}  # type → the field it cannot do without

MAX_ID = 128
MAX_NAME = 64
MAX_URL = 2048
MAX_PROPS = 32
MAX_PROP_VALUE = 256
MAX_SESSION_NUMBER = 10_000_000
MAX_CLICKS = 1_000_000
SKEW_TOLERANCE_MS = 2_000  # below this the client's ts is kept, so transit delay never reorders events
MAX_AGE_MS = 7 * 24 * 3600 * 1000
FUTURE_TOLERANCE_MS = 5_000
# Props that carry money: a numeric string there is stored as the number it means.
MONEY_PROPS = frozenset({"value", "price", "tax", "shipping", "amount", "cost"})


@dataclass(frozen=True, slots=True)
class Client:
    """What the collector learns about the sender of a request (no raw IP)."""

    device: str = "desktop"
    browser: str = ""
    os: str = ""
    is_bot: bool = False


# -- field kinds: a strict type for msgspec and a tolerant reader for the slow path --------------


def is_number(value: Any) -> bool:
    kind = type(value)  # exact types: bool is an int subclass and is not a number here
    return kind is int or (kind is float and math.isfinite(value))


def number_from(value: Any) -> float | int | None:
    """A number, or a string that is one ("59.90", " 12 "); None otherwise."""
    if is_number(value):
        return value  # type: ignore[no-any-return]
    if type(value) is str:
        try:
            parsed = float(value.strip())
        except ValueError:
            return None
        return parsed if math.isfinite(parsed) else None
    return None


def canonical(number: float | int) -> str:
    """Numbers as text: 10432 and 10432.0 are both "10432"; 59.9 is "59.9"."""
    if type(number) is float and number.is_integer() and abs(number) < 2**53:
        return str(int(number))
    return repr(number) if type(number) is float else str(number)


@dataclass(frozen=True)
class Text:
    limit: int
    ids: bool = False  # an identifier: a number sent for it is its decimal text
    strict: Any = None

    def read(self, value: Any) -> str:
        if type(value) is str:
            if len(value) > self.limit:
                raise ValueError(f"longer than {self.limit} characters")
            return value
        if self.ids and is_number(value):
            return canonical(value)
        raise ValueError("not a string")


@dataclass(frozen=True)
class Uuid:
    strict: Any = None

    def read(self, value: Any) -> str:
        if type(value) is not str:
            raise ValueError("missing or not a string")
        if _UUID.fullmatch(value) is None:  # the hyphenated form browsers' crypto.randomUUID() gives
            raise ValueError("not a UUID")
        return value


@dataclass(frozen=True)
class OneOf:
    values: tuple[str, ...]
    strict: Any = None

    def read(self, value: Any) -> str:
        if value not in self.values:
            raise ValueError(f"must be one of {', '.join(self.values)}")
        return str(value)


@dataclass(frozen=True)
class Number:
    low: float = -math.inf
    high: float = math.inf
    integer: bool = False
    what: str = "not a number"
    strict: Any = None

    def read(self, value: Any) -> float | int:
        number = number_from(value)
        if number is None or not self.low < number <= self.high or (self.integer and number != int(number)):
            raise ValueError(self.what)
        return int(number) if self.integer else number


@dataclass(frozen=True)
class Money:
    """An amount: a number, or a string as shops format money (chainlens/core/money.py)."""

    strict: Any = None

    def read(self, value: Any) -> float | int:
        amount = money_from(value)
        if amount.value is None:
            raise ValueError(amount.problem)
        return amount.value


def money_from(value: Any) -> money.Amount:
    """An amount from a number or a money string; the problem when it cannot be read for sure."""
    if is_number(value):
        return money.Amount(value)
    if type(value) is not str:
        return money.Amount(None, problem="not a number")
    amount = money.read(value)
    if amount.value is None and not amount.ambiguous:
        number = number_from(value)  # what a number parser takes and the reader does not: ".5", "1e3"
        if number is not None:
            return money.Amount(number)
    return amount


@dataclass(frozen=True)
class Props:
    strict: Any = None

    def read(self, value: Any, dropped: list[tuple[str, str, Any]]) -> dict[str, Any]:
        """The entries that fit (string ≤ MAX_PROP_VALUE, number, boolean); the others go to `dropped`."""
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        out: dict[str, Any] = {}
        for key, item in value.items():
            problem = ""
            if len(key) > MAX_NAME:
                problem = f"key longer than {MAX_NAME} characters"
            elif len(out) >= MAX_PROPS:
                problem = f"more than {MAX_PROPS} keys"
            elif type(item) is str and len(item) > MAX_PROP_VALUE:
                problem = f"longer than {MAX_PROP_VALUE} characters"
            elif key == "items" and type(item) is list:
                pass  # ecommerce items as GA4 pushes them: stored_props keeps their count and ids
            elif not (item is None or type(item) in (str, bool) or is_number(item)):
                problem = "not a string, number or boolean"
            if problem:
                dropped.append((f"props.{key[:MAX_NAME]}", problem, item))
                continue
            out[key] = item
        return out


@dataclass(frozen=True)
class Field:
    kind: Any
    required: bool = False
    default: Any = None


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_UUIDS = re.compile(f"(?:{_UUID.pattern}\n)*")


def ids_valid(ids: list[str]) -> bool:
    """Whether each id, 36 characters long, is a UUID; one match over all of them, since a match per
    id costs more than the checking. Its characters are hex digits and hyphens only, so the only
    line breaks in the joined text are those the join put there."""
    return _UUIDS.fullmatch("\n".join(ids) + "\n") is not None


_Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME)]
_PropValue = Annotated[str, msgspec.Meta(max_length=MAX_PROP_VALUE)] | int | float | bool | None | list[Any]


def _text(limit: int, *, ids: bool = False, min_length: int = 0) -> Text:
    return Text(limit, ids, Annotated[str, msgspec.Meta(min_length=min_length, max_length=limit)])


# The wire event (docs/architecture.md, "The event contract"): one line per field.
FIELDS: dict[str, Field] = {
    # Its length is checked in the decoder, its characters in `ids_valid`, all of a request's at once.
    "id": Field(Uuid(Annotated[str, msgspec.Meta(min_length=36, max_length=36)]), required=True),
    "type": Field(OneOf(EVENT_TYPES, Literal[EVENT_TYPES]), required=True),  # type: ignore[valid-type]
    "ts": Field(Number(0, math.inf, what="missing or not milliseconds since the epoch", strict=int | float),
                required=True),
    "sid": Field(_text(MAX_ID, ids=True, min_length=1), required=True),
    "aid": Field(_text(MAX_ID, ids=True)),
    "uid": Field(_text(MAX_ID, ids=True)),
    "sn": Field(Number(-1, MAX_SESSION_NUMBER, integer=True, what="not a session number",
                       strict=Annotated[int, msgspec.Meta(ge=0, le=MAX_SESSION_NUMBER)]), default=1),
    "step": Field(_text(MAX_NAME)),
    "name": Field(_text(MAX_NAME)),
    "url": Field(_text(MAX_URL)),
    "ref": Field(_text(MAX_URL)),
    "props": Field(Props(Annotated[dict[_Name, _PropValue], msgspec.Meta(max_length=MAX_PROPS)])),
    "value": Field(Money(strict=int | float)),
    "currency": Field(_text(8)),
    "order_id": Field(_text(MAX_ID, ids=True)),
    "nc": Field(Number(-1, MAX_CLICKS, integer=True, what="not a click count",
                       strict=Annotated[int, msgspec.Meta(ge=0, le=MAX_CLICKS)])),
}

Event = msgspec.defstruct("Event", [
    (name, f.kind.strict) if f.required else (name, f.kind.strict | None, f.default)
    for name, f in FIELDS.items()
])
Envelope = msgspec.defstruct("Envelope", [
    ("site", Annotated[str, msgspec.Meta(min_length=1)]),
    ("events", list[Event]),  # type: ignore[valid-type]
    ("sent_at", int | float | None, None),
    ("nostore", bool, False),  # the browser could store nothing: the collector keys the visitor
])
DECODER = msgspec.json.Decoder(Envelope)

