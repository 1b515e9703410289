"""The dashboard's cache (ingestion/report.py, `ReportCache`) never answers from older data."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from chainlens.core.settings import Settings
from ingestion.figures import fetch, parameters
from ingestion.report import ReportCache, report_range
from ingestion.rollup import rollup
from ingestion.runner import READERS, StoreRunner
from tests.test_products_search import sessions
from tests.test_rollups import NOW, ev, load, reset, site_settings


@pytest.fixture
def rolled_up(db: Any, tmp_path: Path) -> Settings:
    """The store holding the search-and-products sessions, rolled up."""
    reset(db)
    settings = site_settings(tmp_path)
    load(db, settings, sessions())
    rollup(db, settings, now=NOW)
    return settings


def test_a_view_is_computed_again_once_a_rollup_has_written(db: Any, tmp_path: Path, rolled_up: Settings) -> None:
    settings, site = rolled_up, rolled_up.sites[0]
    cache = ReportCache()
    first = cache.report(db, site, None, None, None, None, None)
    assert cache.report(db, site, None, None, None, None, None) is first and (cache.hits, cache.misses) == (1, 1)
    orders = first["headline"]["orders"]
    # Another order arrives and a rollup takes it in: the same view now shows it.
    load(db, settings, [ev("P9", 0, "step", "cart"), ev("P9", 2, "step", "purchase", order_id="o-9", value=5.0)],
         received_ms=int((NOW + dt.timedelta(seconds=30)).timestamp() * 1000))
    rollup(db, settings, now=NOW + dt.timedelta(minutes=1))
    again = cache.report(db, site, None, None, None, None, None)
    assert cache.misses == 2 and again["headline"]["orders"] == orders + 1
    assert again == report_range(db, site, None, None)
    # Another view is its own entry; a reloaded site (a new object) is not served the old one.
    cache.report(db, site, None, None, None, "mobile", None)
    assert cache.misses == 3
    reloaded = site_settings(tmp_path).sites[0]
    cache.report(db, reloaded, None, None, None, None, None)
    assert cache.misses == 4


def test_the_figures_on_several_connections_are_those_on_one(db: Any, rolled_up: Settings) -> None:
    # The store process runs a view's queries on READERS connections at once (ingestion/runner.py).
    site = rolled_up.sites[0]
    runner = StoreRunner(f"chdb://{db.path}", client=db)
    readers = runner.readers()
    assert len(readers) == READERS and readers[0] is db
    try:
        for view in ((None, None), (None, None, None, "mobile")):
            one, several = report_range(db, site, *view), report_range(readers, site, *view)
            assert one == several and one["search"] and one["landing"]
        # A failing query fails the view; the other connections stop after theirs.
        p = parameters(site, start=NOW.date() - dt.timedelta(days=6), end=NOW.date())
        jobs = {"headline": ("headline", p), "nope": ("no_such_figure", p), "left": ("left", p)}
        with pytest.raises(KeyError):
            fetch(readers, jobs)
    finally:
        runner.close_readers()
