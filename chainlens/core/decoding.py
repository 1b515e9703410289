"""Decoding a beacon: the typed envelope in C when every part is as declared, else JSON text in
any encoding JSON allows, read field by field (chainlens/core/fields.py)."""

from __future__ import annotations

import codecs
from typing import Any

import msgspec

from chainlens.core.fields import DECODER, FIELDS, MAX_ID, ORDER_SESSION, Event, Props, money_from, number_from
from chainlens.core.props import as_text
from chainlens.core.refusals import BeaconError, EventError


def decode(body: bytes) -> Any:
    """The typed envelope when every part of `body` is as declared (the common case), else None."""
    try:
        return DECODER.decode(body)
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
        raw = {**raw, "sid": ORDER_SESSION + as_text(order)[:MAX_ID - len(ORDER_SESSION)]}
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
