"""form_fields_daily and form_daily against sessions counted by hand (docs/metrics.md, "Form
fields"), and the forms add-on's reports as the collector checks them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from chainlens.core.fields import Client
from chainlens.core.refusals import EventError
from chainlens.core.rows import validate_event
from ingestion.rollup import rollup
from tests.test_rollups import NOW, NOW_MS, H, ev, load, reset, site_settings, table


def field(session: str, minute: float, name: str, ms: int, **counts: Any) -> Any:
    props = {"form": "details", "field": name, "ms": ms, "corrections": counts.get("corrections", 0),
             "errors": counts.get("errors", 0), "autofilled": counts.get("autofilled", 0)}
    return ev(session, minute, "track", "checkout.info", "form_field", props=props, **counts.get("kw", {}))


def outcome(session: str, minute: float, outcome: str, last: str, **kw: Any) -> Any:
    props = {"form": "details", "outcome": outcome, "attempts": 1, "last_field": last}
    return ev(session, minute, "track", "checkout.info", "form_report", props=props, **kw)


def sessions() -> list[Any]:
    retried = "0b7c2d4e-1111-4222-8333-944455556666"
    return [
        # F1 corrects the zip it got wrong, submits and buys.
        ev("F1", 0, "page", "cart"), ev("F1", 1, "page", "checkout.info"),
        field("F1", 2, "email", 4000), field("F1", 2, "zip", 3000, errors=1, corrections=1),
        outcome("F1", 2.1, "submitted", "zip"), ev("F1", 3, "page", "checkout.shipping"),
        ev("F1", 5, "step", "purchase", order_id="o-f1", value=30.0),
        # F2, on a phone, lets the browser fill the e-mail, fails the zip twice, leaves there.
        ev("F2", 0, "page", "checkout.info", device="mobile"),
        field("F2", 1, "email", 2000, autofilled=1, kw={"device": "mobile"}),
        field("F2", 1, "zip", 5000, errors=2, kw={"device": "mobile"}),
        outcome("F2", 1.5, "left", "zip", device="mobile"),
        # F3 leaves at the phone field, without an error.
        ev("F3", 0, "page", "checkout.info"), field("F3", 1, "email", 1000), field("F3", 1, "phone", 6000),
        outcome("F3", 1.2, "left", "phone"),
        # F4's e-mail report arrives twice (a retry: one id); it goes on without a submit the add-on saw.
        ev("F4", 0, "page", "checkout.info"), field("F4", 1, "email", 3000, kw={"id": retried}),
        field("F4", 1, "email", 3000, kw={"id": retried}), outcome("F4", 1.1, "left", "email"),
        ev("F4", 2, "page", "checkout.shipping"),
    ]


def test_form_fields_and_forms_by_hand(db: Any, tmp_path: Path) -> None:
    reset(db)
    settings = site_settings(tmp_path)
    load(db, settings, sessions())
    rollup(db, settings, now=NOW)
    (form,) = table(db, "form_daily", "device = 'all'")
    assert (form["step"], form["form"], form["started"], form["submitted"], form["abandoned"]) == (
        "checkout.info", "details", 4, 1, 2)
    assert form["median_ms_to_submit"] == 7000  # F1: 4 s in the e-mail, 3 s in the zip
    fields = {r["field"]: r for r in table(db, "form_fields_daily", "device = 'all'")}
    got = {k: (r["sessions_touched"], r["sessions_left_here"], r["median_ms"], r["errors"], r["sessions_with_error"],
               r["corrections"], r["autofilled"], r["abandoned_with_error"], r["abandoned_without_error"])
           for k, r in fields.items()}
    assert got == {"email": (4, 0, 2500.0, 0, 0, 0, 1, 0, 2),
                   "zip": (2, 1, 4000.0, 3, 2, 1, 0, 1, 0),
                   "phone": (1, 1, 6000.0, 0, 0, 0, 0, 0, 1)}
    assert fields["zip"]["diff"] is None  # nobody touched it without an error: nothing to compare with
    # e-mail: no session had an error on it; the diff needs one on each side.
    assert fields["email"]["diff"] is None and fields["email"]["orders_lost"] is None
    mobile = {r["field"]: r["sessions_touched"] for r in table(db, "form_fields_daily", "device = 'mobile'")}
    assert mobile == {"email": 1, "zip": 1}


def test_an_error_costs_orders_with_an_interval(db: Any, tmp_path: Path) -> None:
    """40 sessions touch the zip: 10 with an error (6 leave), 30 without (3 leave)."""
    reset(db)
    settings = site_settings(tmp_path)
    events = []
    for i in range(40):
        s, error, leaves = f"Z{i}", i < 10, (i < 6) or (10 <= i < 13)
        events += [ev(s, 0, "page", "checkout.info"), field(s, 1, "zip", 2000, errors=int(error)),
                   outcome(s, 1.5, "left" if leaves else "submitted", "zip")]
        if not leaves:
            events.append(ev(s, 2, "page", "checkout.shipping"))
    load(db, settings, events)
    rollup(db, settings, now=NOW)
    (row,) = table(db, "form_fields_daily", "device = 'all'")
    assert (row["sessions_with_error"], row["abandoned_with_error"], row["abandoned_without_error"]) == (10, 6, 3)
    assert row["diff"] == pytest.approx(0.6 - 0.1)
    assert row["orders_lost"] == pytest.approx(10 * 0.5)
    assert row["diff_low"] < 0.5 < row["diff_high"] and row["diff_low"] > 0  # Newcombe's interval excludes 0


@pytest.mark.parametrize("name, props, field", [
    ("form_field", {"form": "details", "field": "zip", "ms": -5}, "props.ms"),
    ("form_field", {"form": "details", "ms": 5}, "props.field"),
    ("form_field", {"form": "details", "field": "zip", "ms": 5, "errors": 1.5}, "props.errors"),
    ("form_field", {"form": "details", "field": "zip", "autofilled": 2}, "props.autofilled"),
    ("form_report", {"form": "details", "outcome": "maybe"}, "props.outcome"),
    ("form_report", {"outcome": "left"}, "props.form"),
])
def test_a_forms_report_out_of_bounds_is_refused_by_name(tmp_path: Path, name: str, props: dict[str, Any],
                                                         field: str) -> None:
    site = site_settings(tmp_path).sites[0]
    raw = {"id": "6b7c2d4e-1111-4222-8333-944455556666", "type": "track", "name": name, "ts": NOW_MS - 60_000,
           "sid": "s", "aid": "a", "sn": 1, "step": "checkout.info", "props": props}
    with pytest.raises(EventError) as refused:
        validate_event(raw, site=site, client=Client(), received_ms=NOW_MS, sent_at=None)
    assert refused.value.field == field


FIELDS = ("email", "zip", "phone")


@st.composite
def form_sessions(draw: Any) -> list[Any]:
    """Sessions at the details form: reports about its fields (some retried under one id), outcomes
    `left` and `submitted`, and the steps they went on to, or not."""
    events = []
    for n in range(draw(st.integers(1, 10))):
        s, t = f"R{n}", draw(st.integers(0, 3 * 24 * 60))
        base = NOW_MS - 26 * H - t * 60_000
        events.append(ev(s, 0, "page", "checkout.info", base=base))
        for i in range(draw(st.integers(0, 5))):
            props = {"form": "details", "field": draw(st.sampled_from(FIELDS)), "ms": draw(st.integers(0, 9000)),
                     "corrections": draw(st.integers(0, 2)), "errors": draw(st.integers(0, 2)),
                     "autofilled": draw(st.integers(0, 1))}
            e = ev(s, 1 + i * 0.1, "track", "checkout.info", "form_field", props=props, base=base)
            events += [e, e] if draw(st.integers(0, 5)) == 0 else [e]
        for i in range(draw(st.integers(0, 2))):
            props = {"form": "details", "outcome": draw(st.sampled_from(["left", "submitted"])), "attempts": 1,
                     "last_field": draw(st.sampled_from(FIELDS))}
            events.append(ev(s, 2 + i * 0.1, "track", "checkout.info", "form_report", props=props, base=base))
        for i, step in enumerate(CHAIN_AFTER[:draw(st.integers(0, 2))]):
            events.append(ev(s, 3 + i, "page", step, base=base))
    return events


CHAIN_AFTER = ("checkout.shipping", "purchase")


def reference(events: list[Any]) -> tuple[dict[tuple, tuple], dict[tuple, tuple]]:
    """form_fields_daily's and form_daily's 'all' rows, from the definitions (docs/metrics.md)."""
    by_session: dict[str, list[Any]] = {}
    for e in {e.id: e for e in events}.values():
        by_session.setdefault(e.session, []).append(e)
    fields: dict[tuple, list[int]] = {}
    forms: dict[tuple, list[int]] = {}
    for evs in by_session.values():
        day = dt.datetime.fromtimestamp(min(e.ts for e in evs) / 1000, dt.UTC).date()
        left_at_step = not any(e.step in CHAIN_AFTER for e in evs)
        reports = [e for e in evs if e.name == "form_field"]
        if not reports:
            continue
        outcomes = sorted((e for e in evs if e.name == "form_report"), key=lambda e: e.ts)
        submitted = any(e.props["outcome"] == "submitted" for e in outcomes)
        lefts = [e for e in outcomes if e.props["outcome"] == "left"]
        last = lefts[-1].props["last_field"] if lefts else ""
        abandoned = not submitted and left_at_step
        form = forms.setdefault((day,), [0, 0, 0])
        form[0] += 1
        form[1] += submitted
        form[2] += abandoned
        for name in {e.props["field"] for e in reports}:
            mine = [e.props for e in reports if e.props["field"] == name]
            errors = sum(p["errors"] for p in mine)
            row = fields.setdefault((day, name), [0] * 8)
            for i, v in enumerate((1, abandoned and last == name, errors, errors > 0,
                                   sum(p["corrections"] for p in mine), any(p["autofilled"] for p in mine),
                                   errors > 0 and abandoned, errors == 0 and abandoned)):
                row[i] += int(v)
    return ({k: tuple(v) for k, v in fields.items()}, {k: tuple(v) for k, v in forms.items()})


@pytest.mark.slow  # the property runs: `make test`, not the fast loop
@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(events=form_sessions())
def test_the_form_tables_match_the_definitions(db: Any, tmp_path: Path, events: list[Any]) -> None:
    reset(db)
    settings = site_settings(tmp_path)
    load(db, settings, events)
    rollup(db, settings, now=NOW)
    want_fields, want_forms = reference(events)
    got = {(r["day"], r["field"]): (r["sessions_touched"], r["sessions_left_here"], r["errors"],
                                    r["sessions_with_error"], r["corrections"], r["autofilled"],
                                    r["abandoned_with_error"], r["abandoned_without_error"])
           for r in table(db, "form_fields_daily", "device = 'all'")}
    assert got == want_fields
    forms = {(r["day"],): (r["started"], r["submitted"], r["abandoned"]) for r in table(db, "form_daily",
                                                                                      "device = 'all'")}
    assert forms == want_forms
