"""The store process's runners (ingestion/runner.py): the live pass and the dashboard's reads
beside the store's thread."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from chainlens.core.loading import from_mapping
from ingestion import live_alerts, schedule
from ingestion.report import report_range
from ingestion.rollup import rollup
from ingestion.runner import StoreRunner
from ingestion.service import StoreService
from tests.conftest import make_config, site_config, wait_for
from tests.test_rollups import NOW, hand_sessions, load, reset, site_settings


@pytest.mark.slow  # under a concurrent rollup: `make test`
async def test_the_live_pass_runs_while_the_stores_thread_is_busy(db: Any, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A rollup or a load holds the store's thread for seconds; the live pass has its own."""
    settings = from_mapping(make_config(tmp_path, sites=[site_config(alerts={"live_every_s": 1})]))
    runner = StoreRunner(f"chdb://{db.path}", client=db)
    passes: list[tuple[str, float]] = []
    real = live_alerts.Detector.evaluate

    def evaluate(self: live_alerts.Detector, client: Any, *args: Any, **kwargs: Any) -> Any:
        passes.append((threading.current_thread().name, time.monotonic()))
        return real(self, client, *args, **kwargs)

    monkeypatch.setattr(live_alerts.Detector, "evaluate", evaluate)
    await runner.call(lambda client: None)  # the schema is made
    busy_from = time.monotonic()
    busy = asyncio.create_task(runner.call(lambda client: time.sleep(4)))  # a long rollup
    lane, stopping = runner.beside("store-live"), asyncio.Event()
    live = asyncio.create_task(schedule.live(lambda: settings, lane, stopping))
    try:
        async def ran() -> bool:
            return bool(passes)

        await wait_for(ran, timeout=3.5, what="a live pass while the store's thread sleeps")
        assert not busy.done()
        await busy
    finally:
        stopping.set()
        await live
        await lane.close()
        await runner.close()
    name, at = passes[0]
    assert name.startswith("store-live") and at - busy_from < 4
    assert db.query("SELECT 1").result_rows == [(1,)]  # a runner's close leaves a lent client open


@pytest.mark.slow  # under a concurrent rollup: `make test`
async def test_the_dashboard_answers_while_the_stores_thread_is_busy(db: Any, tmp_path: Path) -> None:
    """The page's figures, its live panel and the idle thresholds are read on a thread and
    connections of their own, and are the figures read on the store's client."""
    settings = site_settings(tmp_path)
    reset(db)
    load(db, settings, hand_sessions())
    rollup(db, settings, now=NOW)
    site = settings.sites[0]
    truth = report_range(db, site, None, None)
    assert truth["funnel"], "the hand sessions make a funnel"
    service = StoreService(settings, StoreRunner(f"chdb://{db.path}", client=db))
    await service.runner.call(lambda client: None)  # the schema is made
    busy = asyncio.create_task(service.runner.call(lambda client: time.sleep(4)))  # a long rollup
    try:
        page, live, idle = await asyncio.wait_for(asyncio.gather(
            service.report({"site": site.id}), service.live(site.id), service.idle_ms(site.id)), timeout=3.5)
        assert not busy.done()
    finally:
        await busy
        await service.reads.close()
        await service.runner.close()
    assert orjson.dumps(page) == orjson.dumps(truth)  # as the page gets them (NaN is not NaN)
    assert "site" in live and isinstance(idle, dict)
