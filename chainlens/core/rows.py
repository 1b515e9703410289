"""The row builder: one read event to its `events` row, the same on `/e`, `/s2s` and `chainlens
import` (docs/architecture.md, "The event contract").

One cross-field check and one builder serve both paths: the typed events the fast decoder
made, and the events the tolerant reader (chainlens/core/decoding.py) took field by field.
The rules of particular events live apart: orders after the purchase (orders.py), the risk
script's records (interventions.py), campaigns and URL scrubbing (campaigns.py), props
(props.py). A row is an `EventRow`, named fields in the `events` table's order, written to
the spool as ClickHouse `JSONCompactEachRow`; times are epoch seconds with millisecond
decimals, which ClickHouse reads into DateTime64(3) exactly from JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson

from chainlens.core.campaigns import campaign_props, scrub_url
from chainlens.core.decoding import read_event
from chainlens.core.fields import (
    FUTURE_TOLERANCE_MS,
    MAX_AGE_MS,
    MAX_ID,
    NEEDS,
    SERVER_SOURCES,
    SKEW_TOLERANCE_MS,
    Client,
    ids_valid,
    is_number,
    number_from,
)
from chainlens.core.forms import FORM_EVENTS, check_form
from chainlens.core.interventions import INTERVENTION_PROPS, check_intervention
from chainlens.core.orders import FEEDBACK, LATE_AGE_MS, after_purchase_props
from chainlens.core.props import search_term, stored_props
from chainlens.core.refusals import EventError, RejectedRow, rejected_row
from chainlens.core.settings import Site


class EventRow(msgspec.Struct, array_like=True):
    """One `events` row, its fields in the table's column order (ingestion/schema/current.sql);
    encoded as a JSON array, the form the store ingests."""

    site_id: str
    event_id: str
    session_id: str
    anon_id: str
    user_id: str
    session_number: int
    type: str
    step: str
    name: str
    ts: float
    client_ts: float
    received_at: float
    url: str
    referrer: str
    props: dict[str, str]
    value: float | None
    currency: str
    order_id: str
    device: str
    browser: str
    os: str
    is_bot: bool
    source: str  # how it came: `e` (a browser), `s2s` (the shop's back office), `import`


EVENT_COLUMNS: tuple[str, ...] = EventRow.__struct_fields__


@dataclass
class Intake:
    """What a request's events became: rows to store, and what was refused or left out."""

    rows: list[EventRow] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)  # events_rejected rows: events and dropped fields
    errors: list[dict[str, Any]] = field(default_factory=list)  # per rejected event: {index, error, code, field}
    dropped: list[dict[str, Any]] = field(default_factory=list)  # per dropped field: {index, error, code, field}
    rejected_index: list[int] = field(default_factory=list)  # the event index of each `rejected` row


def clock_shift(received_ms: int, sent_at: int | None) -> int:
    """The correction of a wrong client clock (docs/metrics.md, "Time")."""
    if sent_at is None or abs(received_ms - sent_at) <= SKEW_TOLERANCE_MS:
        return 0
    return received_ms - sent_at


def event_row(e: Any, *, site: Site, client: Client, received_ms: int, shift: int, dropped: list[tuple[str, str, Any]],
              age_limit: bool = True, source: str = "e") -> EventRow:
    """The `events` row of one read event, or EventError; what it leaves out
    goes to `dropped`. From the shop's back office (/s2s, import), reports about an order may
    come months later."""
    server = source in SERVER_SOURCES
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
        check_intervention(name, props)
    elif kind == "track" and name in FORM_EVENTS:
        check_form(name, props)
    if kind == "page" and "?" in url:
        props.update(campaign_props(url))
    # A search term is kept for the search step only (docs/metrics.md, "Site search").
    term = search_term(props, url, site.behavior.search_params) if step == site.search_step and step else ""
    if term:
        props["search_term"] = term
    else:
        props.pop("search_term", None)
    if e.nc and kind in ("page", "step"):  # what enters a step: clicks to reach it
        props["clicks"] = str(e.nc)
    value = e.value
    if value is not None and not is_number(value):
        raise EventError("value", "not a number")
    if value is None and "value" in props:
        value = number_from(props["value"])  # None when unreadable: named in `dropped` above
    return EventRow(
        site.id, e.id.lower(), e.sid, e.aid or "", e.uid or "", e.sn,
        kind, step, name, ts / 1000, client_ts / 1000, received_ms / 1000,
        scrub_url(url, site.scrub_query), scrub_url(e.ref or "", site.scrub_query),
        props, None if value is None else float(value),
        e.currency or props.get("currency", "")[:8], order_id,
        client.device, client.browser, client.os, client.is_bot, source,
    )


def validate_event(raw: Any, *, site: Site, client: Client, received_ms: int, sent_at: int | None,
                   age_limit: bool = True, server: bool = False) -> EventRow:
    """One parsed event to its row (optional fields that cannot be read are left out), or EventError."""
    e = read_event(raw, [], server=server)
    return event_row(e, site=site, client=client, received_ms=received_ms, shift=clock_shift(received_ms, sent_at),
                     dropped=[], age_limit=age_limit, source="s2s" if server else "e")


def fast_rows(events: list[Any], *, site: Site, client: Client, received_ms: int, sent_at: int | None,
              age_limit: bool = True, source: str = "e") -> list[EventRow] | None:
    """Rows of decoded, typed events when every one passes the cross-field check, else None."""
    if not ids_valid([e.id for e in events]):
        return None
    shift = clock_shift(received_ms, sent_at)
    dropped: list[tuple[str, str, Any]] = []
    try:
        rows = [event_row(e, site=site, client=client, received_ms=received_ms, shift=shift, dropped=dropped,
                          age_limit=age_limit, source=source) for e in events]
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
                                      dropped=dropped, age_limit=age_limit, source=source))
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
