"""The event contract (DESIGN, "Beacon wire format"): one place both the accept path
and the load path import.

`validate_event` turns one wire event into an `events` row or raises `EventError`
naming the field; `EVENT_COLUMNS` and `REJECTED_COLUMNS` are the column orders of
the rows the spool carries and the loader inserts. Times in rows are epoch
seconds with millisecond decimals, which ClickHouse reads into DateTime64(3)
exactly from JSON.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import orjson

from chainlens.settings import Site

EVENT_TYPES = frozenset({"page", "step", "obstacle", "track", "identify"})

# Row layout shared by the spool and the `events` table (ingestion/schema).
EVENT_COLUMNS = (
    "site_id", "event_id", "session_id", "anon_id", "user_id", "session_number",
    "type", "step", "name", "ts", "client_ts", "received_at", "url", "referrer",
    "props", "value", "currency", "order_id", "device", "browser", "os", "is_bot",
)
REJECTED_COLUMNS = ("received_at", "site_id", "source", "reason", "payload")

MAX_ID = 128
MAX_NAME = 64
MAX_URL = 2048
MAX_PROPS = 32
MAX_PROP_VALUE = 256
SKEW_TOLERANCE_MS = 2_000  # below this the client's ts is kept, so transit delay never reorders events
MAX_AGE_MS = 7 * 24 * 3600 * 1000
FUTURE_TOLERANCE_MS = 5_000


class BeaconError(Exception):
    """The whole request cannot be read; `status` is the 4xx it is answered with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class EventError(Exception):
    """One event is invalid; it is kept in `events_rejected` with this reason."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


@dataclass(frozen=True, slots=True)
class Client:
    """What the collector learns about the sender of a request (no raw IP)."""

    device: str = "desktop"
    browser: str = ""
    os: str = ""
    is_bot: bool = False


def parse_envelope(body: Any, *, max_events: int) -> tuple[str, int | None, list[Any]]:
    """Check the envelope `{"site", "sent_at", "events"}`; return its three parts."""
    if not isinstance(body, dict):
        raise BeaconError(400, "body must be a JSON object with 'site' and 'events'")
    site = body.get("site")
    if not isinstance(site, str) or not site:
        raise BeaconError(400, "site: missing or not a string")
    events = body.get("events")
    if not isinstance(events, list):
        raise BeaconError(400, "events: missing or not an array")
    if len(events) > max_events:
        raise BeaconError(413, f"events: {len(events)} events in one request, at most {max_events}")
    sent_at = body.get("sent_at")
    if sent_at is not None and not _is_number(sent_at):
        raise BeaconError(400, "sent_at: not a number of milliseconds")
    return site, None if sent_at is None else int(sent_at), events


def validate_event(
    raw: Any, *, site: Site, client: Client, received_ms: int, sent_at: int | None, age_limit: bool = True
) -> list[Any]:
    """One wire event to an `events` row (EVENT_COLUMNS order), or EventError."""
    if not isinstance(raw, dict):
        raise EventError("event", "not a JSON object")
    event_id = _uuid(raw.get("id"))
    kind = raw.get("type")
    if kind not in EVENT_TYPES:
        raise EventError("type", f"must be one of {', '.join(sorted(EVENT_TYPES))}")
    raw_ts: Any = raw.get("ts")
    if not _is_number(raw_ts) or raw_ts <= 0:
        raise EventError("ts", "missing or not milliseconds since the epoch")
    client_ts = int(raw_ts)
    ts = client_ts
    if sent_at is not None and abs(received_ms - sent_at) > SKEW_TOLERANCE_MS:
        ts = client_ts + (received_ms - sent_at)  # the client's clock is wrong: shift by its skew
    if age_limit and ts < received_ms - MAX_AGE_MS:
        raise EventError("ts", "older than 7 days")
    if ts > received_ms + FUTURE_TOLERANCE_MS:
        raise EventError("ts", "in the future")
    session_id = _text(raw, "sid", MAX_ID, required=True)
    step = _text(raw, "step", MAX_NAME, required=kind == "step")
    if step and step not in site.chain_steps:
        raise EventError("step", f"{step!r} is not a step of site {site.id!r}'s chain")
    name = _text(raw, "name", MAX_NAME, required=kind in ("obstacle", "track"))
    props = flat_props(raw.get("props"))
    value = raw.get("value")
    if value is None and "value" in props:
        value = float_or_none(props["value"])
    if value is not None and not _is_number(value):
        raise EventError("value", "not a number")
    sn = raw.get("sn", 1)
    if not isinstance(sn, int) or isinstance(sn, bool) or not 0 <= sn <= 10_000_000:
        raise EventError("sn", "not a session number")
    return [
        site.id, event_id, session_id, _text(raw, "aid", MAX_ID), _text(raw, "uid", MAX_ID), sn,
        kind, step, name, ts / 1000, client_ts / 1000, received_ms / 1000,
        scrub_url(_text(raw, "url", MAX_URL), site.scrub_query),
        scrub_url(_text(raw, "ref", MAX_URL), site.scrub_query),
        props, None if value is None else float(value),
        _text(raw, "currency", 8) or props.get("currency", "")[:8],
        _text(raw, "order_id", MAX_ID) or props.get("order_id", "")[:MAX_ID],
        client.device, client.browser, client.os, client.is_bot,
    ]


def build_rows(
    events: list[Any], *, site: Site, client: Client, received_ms: int, sent_at: int | None, source: str,
    age_limit: bool = True,
) -> tuple[list[list[Any]], list[list[Any]], list[dict[str, Any]]]:
    """Validate each event: accepted rows, rejected rows, and the errors to answer with."""
    rows: list[list[Any]] = []
    rejected: list[list[Any]] = []
    errors: list[dict[str, Any]] = []
    for index, raw in enumerate(events):
        try:
            rows.append(validate_event(raw, site=site, client=client, received_ms=received_ms,
                                       sent_at=sent_at, age_limit=age_limit))
        except EventError as exc:
            errors.append({"index": index, "error": str(exc)})
            rejected.append(rejected_row(received_ms=received_ms, site_id=site.id, source=source,
                                         reason=str(exc), payload=orjson.dumps(raw)))
    return rows, rejected, errors


def rejected_row(*, received_ms: int, site_id: str, source: str, reason: str, payload: bytes | str) -> list[Any]:
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    return [received_ms / 1000, site_id, source, reason, text[:65536]]


def _is_number(value: Any) -> bool:
    kind = type(value)  # exact types: bool is an int subclass and is not a number here
    return kind is int or (kind is float and math.isfinite(value))


def float_or_none(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _uuid(value: Any) -> str:
    if not isinstance(value, str):
        raise EventError("id", "missing or not a string")
    if _UUID.fullmatch(value) is None:  # the hyphenated form browsers' crypto.randomUUID() gives
        raise EventError("id", "not a UUID")
    return value.lower()


def _text(raw: dict[str, Any], key: str, limit: int, *, required: bool = False) -> str:
    value = raw.get(key)
    if type(value) is str and 0 < len(value) <= limit:  # the common case, first
        return value
    if value is None or value == "":
        if required:
            raise EventError(key, "missing")
        return ""
    if not isinstance(value, str):
        raise EventError(key, "not a string")
    if len(value) > limit:
        raise EventError(key, f"longer than {limit} characters")
    return value


def flat_props(value: Any) -> dict[str, str]:
    """A flat object of string, number or boolean values, stored as Map(String, String)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EventError("props", "not a JSON object")
    if len(value) > MAX_PROPS:
        raise EventError("props", f"more than {MAX_PROPS} keys")
    out: dict[str, str] = {}
    for key, item in value.items():
        if len(key) > MAX_NAME:
            raise EventError(f"props.{key[:MAX_NAME]}", f"key longer than {MAX_NAME} characters")
        if isinstance(item, bool):
            out[key] = "true" if item else "false"
        elif isinstance(item, str):
            if len(item) > MAX_PROP_VALUE:
                raise EventError(f"props.{key}", f"longer than {MAX_PROP_VALUE} characters")
            out[key] = item
        elif _is_number(item):
            out[key] = repr(item) if isinstance(item, float) else str(item)
        elif item is None:
            continue
        else:
            raise EventError(f"props.{key}", "not a string, number or boolean")
    return out


def scrub_url(url: str, scrub: bool) -> str:
    """Privacy by default: query strings and fragments can carry e-mails and tokens."""
    if not scrub or not url:
        return url
    return url.split("?", 1)[0].split("#", 1)[0]
