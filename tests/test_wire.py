"""The fast path (typed decode) builds exactly the rows the tolerant reader does (chainlens/core/rows.py)."""

from __future__ import annotations

import time
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from chainlens.core import decoding, rows
from chainlens.core.fields import Client
from chainlens.core.loading import from_mapping
from chainlens.core.refusals import EventError
from chainlens.core.rows import validate_event
from tests.conftest import make_config

SITE = from_mapping(make_config(__import__("pathlib").Path("/nonexistent"))).sites[0]
NOW = int(time.time() * 1000)
CLIENT = Client(device="mobile", browser="Safari", os="iOS")

texts = st.one_of(st.none(), st.text(max_size=70), st.sampled_from(list(SITE.chain)))
values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False),
                   st.text(max_size=300))
events = st.fixed_dictionaries(
    {"id": st.one_of(st.uuids().map(str), st.uuids().map(lambda u: str(u).upper()), st.text(max_size=5),
                     st.text("0123456789abcdef-g\n", min_size=36, max_size=36)),  # a UUID's length, not always one
     "type": st.sampled_from(["page", "step", "obstacle", "track", "identify", "other"]),
     "ts": st.one_of(st.integers(NOW - 9 * 86_400_000, NOW + 60_000), st.floats(NOW - 86_400_000, NOW),
                     st.booleans()),
     "sid": st.one_of(st.text(max_size=130), st.just("s-1"))},
    optional={"aid": texts, "uid": texts, "sn": st.one_of(st.integers(-1, 5), st.booleans(), st.floats(0, 3)),
              "step": texts, "name": texts, "url": st.sampled_from(["https://s.example/a?x=1#y", "", None]),
              "props": st.one_of(st.none(), st.dictionaries(st.text(max_size=70), values, max_size=34)),
              "value": st.one_of(st.none(), st.floats(allow_nan=False), st.integers(-10**9, 10**9), st.booleans()),
              "currency": texts, "order_id": texts},
)


# Mostly well-formed events, so that the fast path is taken often and compared.
likely = st.fixed_dictionaries(
    {"id": st.uuids().map(str), "type": st.sampled_from(["page", "step", "obstacle", "track", "identify"]),
     "ts": st.one_of(st.integers(NOW - 86_400_000, NOW), st.floats(NOW - 86_400_000, NOW)),
     "sid": st.text(min_size=1, max_size=20)},
    optional={"aid": st.one_of(st.none(), st.text(max_size=10)), "sn": st.integers(0, 9),
              "step": st.sampled_from([*SITE.chain, None, ""]),
              "name": st.sampled_from(["payment_declined", "x", None, ""]),
              "url": st.sampled_from(["https://s.example/a?x=1#y", "https://s.example/b", None]),
              "props": st.dictionaries(st.text(max_size=8), st.one_of(
                  st.none(), st.booleans(), st.integers(-10**9, 10**9),
                  st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8)), max_size=4),
              "value": st.one_of(st.none(), st.floats(0, 1000), st.integers(0, 1000)),
              "currency": st.sampled_from(["EUR", None]), "order_id": st.sampled_from(["o-1", None])},
)


def slow(raw: dict[str, Any], sent_at: int | None) -> list[Any] | None:
    try:
        return validate_event(raw, site=SITE, client=CLIENT, received_ms=NOW, sent_at=sent_at)
    except EventError:
        return None


@settings(max_examples=400, deadline=None)
@given(batch=st.lists(st.one_of(likely, likely, events), min_size=1, max_size=4),
       sent_at=st.one_of(st.none(), st.integers(NOW - 10**7, NOW)))
def test_fast_path_rows_equal_the_validator_rows(batch: list[dict[str, Any]], sent_at: int | None) -> None:
    body = orjson.dumps({"site": "demo", "sent_at": sent_at, "events": batch})
    envelope = decoding.decode(body)
    expected = [slow(raw, sent_at) for raw in orjson.loads(body)["events"]]
    fast = None if envelope is None else rows.fast_rows(envelope.events, site=SITE, client=CLIENT, received_ms=NOW,
                                                    sent_at=sent_at)
    intake = rows.build_rows(orjson.loads(body)["events"], site=SITE, client=CLIENT, received_ms=NOW,
                                 sent_at=sent_at, source="e")
    # Every event is either stored or rejected with a reason, and each refusal is kept.
    assert len(intake.rows) + len(intake.errors) == len(batch)
    assert len(intake.rejected) == len(intake.errors) + len(intake.dropped)
    assert [r for r in expected if r is not None] == intake.rows
    if fast is not None:
        assert fast == intake.rows, "the fast path must build what the tolerant reader builds"


def test_a_typical_beacon_takes_the_fast_path() -> None:
    body = orjson.dumps({"site": "demo", "sent_at": NOW, "events": [
        {"id": "5B0E8F3A-7C1A-4BB4-9A55-111111111111", "type": "step", "ts": NOW, "sid": "s", "aid": "a",
         "step": "purchase", "url": "https://s.example/done?email=x", "props": {"value": "12.5", "ok": True}}]})
    envelope = decoding.decode(body)
    assert envelope is not None
    got = rows.fast_rows(envelope.events, site=SITE, client=CLIENT, received_ms=NOW, sent_at=NOW)
    assert got == [slow(orjson.loads(body)["events"][0], NOW)]
    assert got[0].event_id == "5b0e8f3a-7c1a-4bb4-9a55-111111111111" and got[0].value == 12.5


def test_an_id_of_a_uuids_length_that_is_none_is_refused_by_name() -> None:
    # The decoder checks an id's length; the characters of a request's ids are checked at once.
    good = {"type": "step", "ts": NOW, "sid": "s", "step": "cart"}
    for bad in ("0000abcd-0000-4000-8000-00000000000g", "0000abcd-0000-4000-8000-0000000\n0000",
                "0000abcd00000-4000-8000-000000000000"):
        batch = [{**good, "id": "5b0e8f3a-7c1a-4bb4-9a55-111111111111"}, {**good, "id": bad}]
        body = orjson.dumps({"site": "demo", "sent_at": NOW, "events": batch})
        envelope = decoding.decode(body)
        assert envelope is not None and len(bad) == 36
        assert rows.fast_rows(envelope.events, site=SITE, client=CLIENT, received_ms=NOW, sent_at=NOW) is None
        intake = rows.build_rows(batch, site=SITE, client=CLIENT, received_ms=NOW, sent_at=NOW, source="e")
        assert len(intake.rows) == 1 and intake.errors == [
            {"index": 1, "error": "id: not a UUID", "code": "invalid", "field": "id"}]
