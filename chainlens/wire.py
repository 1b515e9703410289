"""The fast path for beacons that are entirely valid: typed decoding with msgspec.

msgspec decodes the body straight into typed structs and checks types and
lengths in C. When every event of a request passes that and the few checks
left (required fields by type, the site's chain, age), rows are built here at
a fraction of the per-event cost of `contract.validate_event`. Anything else —
one bad event, an unexpected type — returns None and the request goes through
`contract.build_rows`, which names each problem. So this path never decides
what is rejected; `tests/test_wire.py` checks that both give the same rows.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import msgspec

from chainlens.contract import (
    FUTURE_TOLERANCE_MS,
    MAX_AGE_MS,
    MAX_ID,
    MAX_NAME,
    MAX_PROP_VALUE,
    MAX_PROPS,
    MAX_URL,
    SKEW_TOLERANCE_MS,
    Client,
    EventError,
    flat_props,
    float_or_none,
    scrub_url,
)
from chainlens.settings import Site

Id = Annotated[str, msgspec.Meta(max_length=MAX_ID)]
Name = Annotated[str, msgspec.Meta(max_length=MAX_NAME)]
Url = Annotated[str, msgspec.Meta(max_length=MAX_URL)]
PropValue = Annotated[str, msgspec.Meta(max_length=MAX_PROP_VALUE)] | int | float | bool | None
Props = Annotated[dict[Name, PropValue], msgspec.Meta(max_length=MAX_PROPS)]
UUID_PATTERN = "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


class Event(msgspec.Struct):
    id: Annotated[str, msgspec.Meta(pattern=UUID_PATTERN)]
    type: Literal["page", "step", "obstacle", "track", "identify"]
    ts: int | float
    sid: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID)]
    aid: Id | None = None
    uid: Id | None = None
    sn: Annotated[int, msgspec.Meta(ge=0, le=10_000_000)] = 1
    step: Name | None = None
    name: Name | None = None
    url: Url | None = None
    ref: Url | None = None
    props: Props | None = None
    value: int | float | None = None
    currency: Annotated[str, msgspec.Meta(max_length=8)] | None = None
    order_id: Id | None = None


class Envelope(msgspec.Struct):
    site: Annotated[str, msgspec.Meta(min_length=1)]
    events: list[Event]
    sent_at: int | float | None = None


_decoder = msgspec.json.Decoder(Envelope)


def decode(body: bytes) -> Envelope | None:
    try:
        return _decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def rows(events: list[Event], *, site: Site, client: Client, received_ms: int, sent_at: int | None,
         age_limit: bool = True) -> list[list[Any]] | None:
    """`events` rows, as `contract.validate_event` builds them, or None if any event needs the slow path."""
    shift = 0 if sent_at is None or abs(received_ms - sent_at) <= SKEW_TOLERANCE_MS else received_ms - sent_at
    oldest, newest = received_ms - MAX_AGE_MS, received_ms + FUTURE_TOLERANCE_MS
    chain, scrub = site.chain_steps, site.scrub_query
    out = []
    for e in events:
        kind, step, name = e.type, e.step or "", e.name or ""
        if (type(e.ts) is float and not math.isfinite(e.ts)) or e.ts <= 0:
            return None
        client_ts = int(e.ts)
        ts = client_ts + shift
        if (age_limit and ts < oldest) or ts > newest:
            return None
        if (kind == "step" and not step) or (step and step not in chain):
            return None
        if not name and kind in ("obstacle", "track"):
            return None
        try:
            props = flat_props(e.props)  # types and sizes are checked already; this stringifies
        except EventError:
            return None
        value: Any = e.value
        if value is None and "value" in props:
            value = float_or_none(props["value"])
        elif value is not None and type(value) is float and not math.isfinite(value):
            return None
        out.append([
            site.id, e.id.lower(), e.sid, e.aid or "", e.uid or "", e.sn,
            kind, step, name, ts / 1000, client_ts / 1000, received_ms / 1000,
            scrub_url(e.url or "", scrub), scrub_url(e.ref or "", scrub),
            props, None if value is None else float(value),
            e.currency or props.get("currency", "")[:8], e.order_id or props.get("order_id", "")[:MAX_ID],
            client.device, client.browser, client.os, client.is_bot,
        ])
    return out
