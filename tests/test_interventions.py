"""Acting at the moment of abandoning: intervention_daily by hand, and the lift's 95% interval
over seeded simulations with a known true effect (docs/interventions.md)."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from pathlib import Path
from typing import Any

import pytest

from chainlens.core.fields import Client
from chainlens.core.loading import from_mapping
from chainlens.core.rows import validate_event
from chainlens.core.spoolfile import rows_body
from chainlens.demo.shoppers import arm_share
from ingestion import store
from ingestion.rollup import rollup
from tests.conftest import make_config, site_config

NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
NOW_MS = int(NOW.timestamp() * 1000)
M = 60_000


def at_risk(sid: str, arm: str, *, bought: bool, accepted: bool = False, trigger: str = "exit_intent",
            device: str = "desktop") -> list[dict[str, Any]]:
    base = NOW_MS - 30 * 3_600_000
    events = [
        {"type": "page", "step": "cart", "ts": base},
        {"type": "page", "step": "checkout.shipping", "ts": base + M},
        {"type": "track", "name": "intervention", "step": "checkout.shipping", "ts": base + 2 * M,
         "props": {"trigger": trigger, "arm": arm}},
    ]
    if accepted:
        events.append({"type": "track", "name": "intervention_outcome", "step": "checkout.shipping",
                       "ts": base + 3 * M, "props": {"outcome": "accepted", "offer": "FREESHIP", "cost": 4.95}})
    if bought:
        events.append({"type": "step", "step": "purchase", "ts": base + 5 * M, "value": 50.0, "order_id": "o-" + sid})
    return [{"id": str(uuid.uuid4()), "sid": sid, "aid": "a-" + sid, **e} for e in events]


def test_intervention_daily_by_hand(db: Any, tmp_path: Path) -> None:
    settings = from_mapping(make_config(tmp_path, sites=[site_config(
        intervene={"steps": ["checkout.shipping"], "min_sample": 3})]))
    site = settings.sites[0]
    raws = (at_risk("t1", "treatment", bought=True, accepted=True) + at_risk("t2", "treatment", bought=True)
            + at_risk("t3", "treatment", bought=False, accepted=True) + at_risk("t4", "treatment", bought=False)
            + at_risk("h1", "holdout", bought=True) + at_risk("h2", "holdout", bought=False)
            + at_risk("h3", "holdout", bought=False, trigger="idle"))
    rows = [validate_event(r, site=site, client=Client(device="desktop"), received_ms=NOW_MS, sent_at=None)
            for r in raws]
    store.insert_events(db, rows_body(rows), token=str(uuid.uuid4()))
    rollup(db, settings, now=NOW)
    result = db.query("SELECT * FROM intervention_daily WHERE trigger = 'all' AND device = 'all' ORDER BY arm")
    got = {r[result.column_names.index("arm")]: dict(zip(result.column_names, r, strict=True))
           for r in result.result_rows}
    hold, treat = got["holdout"], got["treatment"]
    assert (treat["sessions"], treat["accepted"], treat["purchases"], treat["offer_cost"]) == (4, 2, 2, 9.9)
    assert (hold["sessions"], hold["purchases"], hold["diff"]) == (3, 1, None)
    assert treat["diff"] == pytest.approx(2 / 4 - 1 / 3)
    low, high = db.query("SELECT chainlens_diff_low(2, 4, 1, 3), chainlens_diff_high(2, 4, 1, 3)").result_rows[0]
    assert (treat["diff_low"], treat["diff_high"]) == pytest.approx((low, high))
    assert treat["incremental_orders"] == pytest.approx(4 * (2 / 4 - 1 / 3))
    assert treat["incremental_revenue"] == pytest.approx(100.0 - 4 * 50.0 / 3 - 9.9)
    assert treat["insufficient"] is False
    by_trigger = db.query("SELECT trigger, arm, sessions FROM intervention_daily WHERE device = 'all' "
                          "AND trigger != 'all' ORDER BY trigger, arm").result_rows
    assert by_trigger == [("exit_intent", "holdout", 2), ("exit_intent", "treatment", 4), ("idle", "holdout", 1)]


TRUE_EFFECT = 0.08  # points of conversion the offer adds for shoppers who met the shipping cost
MET_SHARE, BASE = 0.5, 0.3


def simulate(seed: int, *, sessions: int = 1500, holdout: float = 0.2) -> tuple[int, int, int, int]:
    """At-risk sessions with the risk script's arm assignment; the offer helps only those who met
    the shipping cost. Returns (treatment purchases, treatment sessions, holdout purchases, holdout sessions)."""
    rng = random.Random(seed)
    k1 = n1 = k2 = n2 = 0
    for _ in range(sessions):
        treated = arm_share(str(uuid.UUID(int=rng.getrandbits(128), version=4))) >= holdout
        met = rng.random() < MET_SHARE
        bought = rng.random() < BASE + (TRUE_EFFECT if treated and met else 0)
        if treated:
            n1, k1 = n1 + 1, k1 + bought
        else:
            n2, k2 = n2 + 1, k2 + bought
    return k1, n1, k2, n2


def test_the_lift_interval_covers_the_true_effect_and_the_holdout_the_baseline(db: Any) -> None:
    runs = [simulate(seed) for seed in range(120)]
    values = ", ".join(f"({k1}, {n1}, {k2}, {n2})" for k1, n1, k2, n2 in runs)
    effect = TRUE_EFFECT * MET_SHARE  # the average effect over everyone at risk
    covered, baseline, shares = db.query(f"""
        SELECT countIf(chainlens_diff_low(k1, n1, k2, n2) <= {effect}
                       AND chainlens_diff_high(k1, n1, k2, n2) >= {effect}),
               countIf(chainlens_wilson_low(k2, n2) <= {BASE} AND chainlens_wilson_high(k2, n2) >= {BASE}),
               avg(n2 / (n1 + n2))
        FROM values('k1 UInt32, n1 UInt32, k2 UInt32, n2 UInt32', {values})""").result_rows[0]
    print(f"\n120 simulations: the 95% interval covers the true lift {effect:.2f} in {covered}; "
          f"the holdout's covers the baseline {BASE} in {baseline}; holdout share {shares:.3f}")
    assert covered >= 108 and baseline >= 108  # at least 90 in 100
    assert shares == pytest.approx(0.2, abs=0.01)  # the arm split is the configured share
