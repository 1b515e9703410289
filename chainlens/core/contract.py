"""The event contract: one declaration of what a wire event may hold, used everywhere.

`FIELDS` is the only place a field's type, size and whether it is required are
stated (docs/architecture.md, "The event contract"). From it come:

- the msgspec structs that decode a whole, valid beacon in C (the fast path);
- the tolerant per-field reader for anything else (the slow path), which
  converts what real tags send in another JSON type (`value: "59.90"`,
  `transaction_id: 10432`) and drops a malformed *optional* field instead of the
  event, reporting it;
- one cross-field check and one row builder, which both paths go through.

So a beacon is judged the same way on `/e`, `/s2s` and by `chainlens import`, and a
new field or limit is one line in `FIELDS`. Rows follow `EVENT_COLUMNS`; times
in rows are epoch seconds with millisecond decimals, which ClickHouse reads
into DateTime64(3) exactly from JSON.
"""

from __future__ import annotations

import codecs
import datetime as dt
import math
import re
import zoneinfo
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

import msgspec
import orjson

from chainlens.core import money
from chainlens.core.refusals import BeaconError, EventError, rejected_row
from chainlens.core.settings import TRACKING_VIEWED, TRIGGERS, Site

EVENT_TYPES = ("identify", "obstacle", "page", "step", "track")
SERVER_SOURCES = ("s2s", "import")  # the store's back office: reports about orders, without a browser session
ORDER_SESSION = "order:"  # the session id of a back-office event that names only its order
NEEDS = {"step": "step", "obstacle": "name", "track": "name"}  # type → the field it cannot do without

# Row layout shared by the spool and the `events` table (ingestion/schema).
EVENT_COLUMNS = (
    "site_id", "event_id", "session_id", "anon_id", "user_id", "session_number",
    "type", "step", "name", "ts", "client_ts", "received_at", "url", "referrer",
    "props", "value", "currency", "order_id", "device", "browser", "os", "is_bot",
)

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
_Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME)]
_PropValue = Annotated[str, msgspec.Meta(max_length=MAX_PROP_VALUE)] | int | float | bool | None | list[Any]


def _text(limit: int, *, ids: bool = False, min_length: int = 0) -> Text:
    return Text(limit, ids, Annotated[str, msgspec.Meta(min_length=min_length, max_length=limit)])


# The wire event (docs/architecture.md, "The event contract"): one line per field.
FIELDS: dict[str, Field] = {
    "id": Field(Uuid(Annotated[str, msgspec.Meta(pattern="^" + _UUID.pattern + "$")]), required=True),
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
_decoder = msgspec.json.Decoder(Envelope)


def decode(body: bytes) -> Any:
    """The typed envelope when every part of `body` is as declared (the common case), else None."""
    try:
        return _decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError):
        return None


# JSON text in UTF-16 or UTF-32, told by its byte order mark or by where the zero bytes of its
# first (ASCII) character fall (RFC 4627, section 3).
_WIDE = [
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
]


def utf8_text(body: bytes) -> bytes:
    """`body` as UTF-8 JSON text: a UTF-8 byte order mark is dropped, UTF-16 and UTF-32 text is
    re-encoded (JSON allows a parser to accept them); anything else is left for the parser."""
    if body.startswith(codecs.BOM_UTF8):
        return body[3:]
    codec = next((name for bom, name in _WIDE if body.startswith(bom)), None)
    if codec is None and len(body) >= 4 and b"\x00" in body[:4]:
        head = body[:4]
        codec = ("utf-32-be" if head[:3] == b"\x00\x00\x00" else "utf-32-le" if head[1:] == b"\x00\x00\x00"
                 else "utf-16-be" if head[0] == 0 else "utf-16-le" if head[1] == 0 else None)
    if codec is None:
        return body
    try:
        return body.decode(codec).encode("utf-8")
    except UnicodeError:
        raise BeaconError(400, f"body is not valid {codec.upper().removesuffix('-LE').removesuffix('-BE')} "
                               "text", code="bad_body") from None


def read_event(raw: Any, dropped: list[tuple[str, str, Any]], *, server: bool = False) -> Any:
    """One event as parsed JSON → an `Event`, converting what can be converted.

    A required field that cannot be read raises EventError; an optional one is left
    out and named in `dropped` as (field, problem, value). A back office (`server`) that
    reports about an order needs no session: its events are keyed `order:<order_id>`.
    """
    if not isinstance(raw, dict):
        raise EventError("event", "not a JSON object", code="bad_event")
    if server and raw.get("sid") in (None, ""):
        order = raw.get("order_id")
        if order in (None, ""):
            raise EventError("order_id", "missing: a back-office event names its order (or its session in sid)",
                             code="missing")
        raw = {**raw, "sid": ORDER_SESSION + _as_text(order)[:MAX_ID - len(ORDER_SESSION)]}
    values: dict[str, Any] = {}
    for name, f in FIELDS.items():
        value = raw.get(name)
        if value is None or value == "":
            if f.required:
                raise EventError(name, "missing", code="missing")
            continue
        try:
            values[name] = f.kind.read(value, dropped) if type(f.kind) is Props else f.kind.read(value)
        except ValueError as exc:
            if f.required:
                raise EventError(name, str(exc)) from None
            dropped.append((name, str(exc), value))
    if type(raw.get("value")) is str and "value" in values and "currency" not in values:
        currency = money_from(raw["value"]).currency  # "59.90 EUR": the currency it names
        if currency:
            values["currency"] = currency
    return Event(**values)


# -- one check across fields, one row builder -----------------------------------------------------


def parse_envelope(body: Any, *, max_events: int) -> tuple[str, int | None, list[Any], bool]:
    """Check the envelope `{"site", "sent_at", "events", "nostore"}` of parsed JSON; return its parts."""
    if not isinstance(body, dict):
        raise BeaconError(400, "body must be a JSON object with 'site' and 'events'", code="bad_envelope")
    site = body.get("site")
    if not isinstance(site, str) or not site:
        raise BeaconError(400, "site: missing or not a string", code="bad_envelope", field="site")
    events = body.get("events")
    if not isinstance(events, list):
        raise BeaconError(400, "events: missing or not an array", code="bad_envelope", field="events")
    if len(events) > max_events:
        raise BeaconError(413, f"events: {len(events)} events in one request, at most {max_events}",
                          code="too_large", field="events")
    raw_sent_at = body.get("sent_at")
    sent_at = None if raw_sent_at is None else number_from(raw_sent_at)
    if raw_sent_at is not None and sent_at is None:
        raise BeaconError(400, "sent_at: not a number of milliseconds", code="bad_envelope", field="sent_at")
    return site, None if sent_at is None else int(sent_at), events, body.get("nostore") is True


@dataclass
class Intake:
    """What a request's events became: rows to store, and what was refused or left out."""

    rows: list[list[Any]] = field(default_factory=list)
    rejected: list[list[Any]] = field(default_factory=list)  # events_rejected rows: events and dropped fields
    errors: list[dict[str, Any]] = field(default_factory=list)  # per rejected event: {index, error, code, field}
    dropped: list[dict[str, Any]] = field(default_factory=list)  # per dropped field: {index, error, code, field}
    rejected_index: list[int] = field(default_factory=list)  # the event index of each `rejected` row


def clock_shift(received_ms: int, sent_at: int | None) -> int:
    """The correction of a wrong client clock (docs/metrics.md, "Time")."""
    if sent_at is None or abs(received_ms - sent_at) <= SKEW_TOLERANCE_MS:
        return 0
    return received_ms - sent_at


def event_row(e: Any, *, site: Site, client: Client, received_ms: int, shift: int, dropped: list[tuple[str, str, Any]],
              age_limit: bool = True, server: bool = False) -> list[Any]:
    """The `events` row of one read event (EVENT_COLUMNS order), or EventError; what it leaves out
    goes to `dropped`. `server`: sent by the store's back office (/s2s), whose reports about an
    order may come months later."""
    if not is_number(e.ts) or e.ts <= 0:
        raise EventError("ts", "missing or not milliseconds since the epoch")
    client_ts = int(e.ts)
    ts = client_ts + shift
    if ts > received_ms + FUTURE_TOLERANCE_MS:
        raise EventError("ts", "in the future", code="in_future")
    kind, step, name = e.type, e.step or "", e.name or ""
    # Step rules run here, not in the browser (docs/snippet.md, "Step rules"): an ecommerce
    # event the site maps is that step; an event on a page a URL rule matches is on that step.
    if not step and kind == "track" and name in site.event_steps:
        kind, step = "step", site.event_steps[name]
    url = e.url or ""
    if not step and url and kind != "identify" and site.step_urls:
        step = site.step_for_url(scrub_url(url, True))
    needed = NEEDS.get(kind)
    if needed and not (step if needed == "step" else name):
        raise EventError(needed, "missing", code="missing")
    if step and step not in site.chain_steps and step not in site.after_steps:
        raise EventError("step", f"{step!r} is not a step of site {site.id!r}'s chain or after_purchase",
                         code="unknown_step")
    about_order = step in site.after_steps or (kind == "track" and name == FEEDBACK)
    if age_limit and ts < received_ms - (LATE_AGE_MS if server and about_order else MAX_AGE_MS):
        raise EventError("ts", "older than 400 days" if server and about_order else "older than 7 days",
                         code="too_old")
    props = stored_props(e.props, dropped)
    order_id = e.order_id or (props.get("order_id") or props.get("transaction_id", ""))[:MAX_ID]
    if about_order:
        after_purchase_props(props, site=site, step=step, order_id=order_id, feedback=name == FEEDBACK)
    elif kind == "track" and name in INTERVENTION_PROPS:
        for key, allowed in INTERVENTION_PROPS[name].items():
            if props.get(key) not in allowed:
                raise EventError(f"props.{key}", f"must be one of {', '.join(allowed)}")
    if kind == "page" and "?" in url:
        props.update(campaign_props(url))
    if e.nc and kind in ("page", "step"):  # what enters a step: clicks to reach it
        props["clicks"] = str(e.nc)
    value = e.value
    if value is not None and not is_number(value):
        raise EventError("value", "not a number")
    if value is None and "value" in props:
        value = number_from(props["value"])  # None when unreadable: named in `dropped` above
    return [
        site.id, e.id.lower(), e.sid, e.aid or "", e.uid or "", e.sn,
        kind, step, name, ts / 1000, client_ts / 1000, received_ms / 1000,
        scrub_url(url, site.scrub_query), scrub_url(e.ref or "", site.scrub_query),
        props, None if value is None else float(value),
        e.currency or props.get("currency", "")[:8], order_id,
        client.device, client.browser, client.os, client.is_bot,
    ]


MAX_ITEMS = 10
FEEDBACK = "feedback"  # a satisfaction answer: chainlens('feedback', score, {asked_at})
# The risk script's records (docs/interventions.md): the moment of risk in both arms, and what the
# store's offer became.
INTERVENTION_PROPS: dict[str, dict[str, tuple[str, ...]]] = {
    "intervention": {"trigger": TRIGGERS, "arm": ("treatment", "holdout")},
    "intervention_outcome": {"outcome": ("accepted", "dismissed")},
}
LATE_AGE_MS = 400 * 24 * 3600 * 1000  # the back office's reports about an order: returns, late surveys


def after_purchase_props(props: dict[str, str], *, site: Site, step: str, order_id: str, feedback: bool) -> None:
    """Check and normalize what a post-purchase step or a satisfaction answer carries
    (docs/metrics.md, "After the purchase"): an order id for the steps, a score from 0 to 10
    for answers, `promised_by` as an instant in UTC."""
    if feedback:
        score = number_from(props.get("score"))
        if score is None or not 0 <= score <= 10 or score != int(score):
            raise EventError("props.score", "must be a whole number from 0 to 10")
        props["score"] = str(int(score))
        return
    if not order_id and step != TRACKING_VIEWED:  # a tracking page may not know it: linked by visitor
        raise EventError("order_id", f"missing: a {step!r} event is linked to its purchase by order id",
                         code="missing")
    if "promised_by" in props:
        promised = instant(props["promised_by"], site.timezone)
        if promised is None:
            raise EventError("props.promised_by", "not a date, a date and time (ISO 8601) or epoch milliseconds")
        props["promised_by"] = promised


def instant(text: str, timezone: str) -> str | None:
    """A promise as UTC ISO text: a date means the end of that day in the site's time zone, a
    time without an offset is the site's local time, a number is epoch milliseconds."""
    number = number_from(text)
    try:
        if number is not None:
            moment = dt.datetime.fromtimestamp(number / 1000, dt.UTC)
        elif len(text.strip()) == 10:
            day = dt.date.fromisoformat(text.strip())
            moment = dt.datetime.combine(day, dt.time(23, 59, 59, 999000), zoneinfo.ZoneInfo(timezone))
        else:
            moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zoneinfo.ZoneInfo(timezone))
    except (ValueError, OverflowError, OSError):
        return None
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _items(items: list[Any], out: dict[str, str]) -> None:
    """Ecommerce items (GA4's `items`): their count, the first ten as [id, name] pairs in
    `item_list` (JSON), and the first item's `in_stock`/`ship_days` for Fast Track In Stock
    unless the event sets them itself (docs/snippet.md, "Ecommerce items")."""
    listed = []
    for item in items[:MAX_ITEMS]:
        if isinstance(item, dict):
            ident, name = item.get("item_id", item.get("id")), item.get("item_name", item.get("name"))
            listed.append([_as_text(ident)[:MAX_ID], str(name or "")[:100]])
    out["items"] = str(len(items))
    if listed:
        out["item_list"] = orjson.dumps(listed).decode()
    first = items[0] if items and isinstance(items[0], dict) else {}
    for key in ("in_stock", "ship_days"):
        value = first.get(key)
        if key not in out and (type(value) in (str, bool) or is_number(value)):
            out[key] = ("true" if value else "false") if type(value) is bool else _as_text(value)[:MAX_PROP_VALUE]


def _as_text(value: Any) -> str:
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


def validate_event(raw: Any, *, site: Site, client: Client, received_ms: int, sent_at: int | None,
                   age_limit: bool = True, server: bool = False) -> list[Any]:
    """One parsed event to its row (optional fields that cannot be read are left out), or EventError."""
    e = read_event(raw, [], server=server)
    return event_row(e, site=site, client=client, received_ms=received_ms, shift=clock_shift(received_ms, sent_at),
                     dropped=[], age_limit=age_limit, server=server)


def fast_rows(events: list[Any], *, site: Site, client: Client, received_ms: int, sent_at: int | None,
              age_limit: bool = True, server: bool = False) -> list[list[Any]] | None:
    """Rows of decoded, typed events when every one passes the cross-field check, else None."""
    shift = clock_shift(received_ms, sent_at)
    dropped: list[tuple[str, str, Any]] = []
    try:
        rows = [event_row(e, site=site, client=client, received_ms=received_ms, shift=shift, dropped=dropped,
                          age_limit=age_limit, server=server) for e in events]
    except EventError:
        return None
    return None if dropped else rows  # the reader that names each problem takes it from here


def build_rows(events: list[Any], *, site: Site, client: Client, received_ms: int, sent_at: int | None,
               source: str, age_limit: bool = True) -> Intake:
    """Read, check and build each parsed event; every refusal is named and kept."""
    out = Intake()
    shift = clock_shift(received_ms, sent_at)
    server = source in SERVER_SOURCES
    for index, raw in enumerate(events):
        dropped: list[tuple[str, str, Any]] = []
        try:
            e = read_event(raw, dropped, server=server)
            out.rows.append(event_row(e, site=site, client=client, received_ms=received_ms, shift=shift,
                                      dropped=dropped, age_limit=age_limit, server=server))
        except EventError as exc:
            out.errors.append({"index": index, "error": str(exc), "code": exc.code, "field": exc.field})
            out.rejected.append(rejected_row(received_ms=received_ms, site_id=site.id, source=source,
                                             reason=str(exc), payload=_dumps(raw), code=exc.code, field=exc.field))
            out.rejected_index.append(index)
            continue
        for name, problem, value in dropped:
            reason = f"{name}: {problem}; event {e.id.lower()} stored without it"
            out.dropped.append({"index": index, "error": reason, "code": "dropped", "field": name})
            out.rejected.append(rejected_row(
                received_ms=received_ms, site_id=site.id, source=source, reason=reason,
                payload=_dumps({"event_id": e.id.lower(), "field": name, "value": value}), code="dropped",
                field=name))
            out.rejected_index.append(index)
    return out


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=repr)


CAMPAIGN_PARAMS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
CLICK_IDS = ("gclid", "fbclid", "msclkid")  # ad click ids: which one was there, never its value


def campaign_props(url: str) -> dict[str, str]:
    """A landing URL's campaign: its UTM parameters, and `click_id` naming the ad click id
    present (docs/metrics.md, "Campaigns"). Kept even when the rest of the query is scrubbed."""
    out: dict[str, str] = {}
    query = url.split("#", 1)[0].split("?", 1)[1]
    for key, value in parse_qsl(query, keep_blank_values=True):  # url is ≤ MAX_URL
        if key in CAMPAIGN_PARAMS and value.strip():
            out[key] = value.strip()[:MAX_PROP_VALUE]
        elif key in CLICK_IDS and "click_id" not in out:
            out["click_id"] = key
    return out


def scrub_url(url: str, scrub: bool) -> str:
    """Privacy by default: query strings and fragments can carry e-mails and tokens."""
    if not scrub or not url:
        return url
    return url.split("?", 1)[0].split("#", 1)[0]

