"""The rollup pass (rollup, then early warnings) and its schedule inside `serve`."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from chainlens.core.settings import Settings
from ingestion import alerts
from ingestion.rollup import rollup
from ingestion.runner import StoreRunner

log = logging.getLogger(__name__)


async def run_pass(settings: Settings, runner: StoreRunner, *, lock: asyncio.Lock, since: dt.date | None = None,
                   until: dt.date | None = None,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Rollup every site, then evaluate and deliver its alerts. One pass at a time."""
    async with lock:
        results = await runner.call(rollup, settings, since=since, until=until, progress=progress)
        summary: dict[str, Any] = {"sites": []}
        for site, result in zip(settings.sites, results, strict=True):
            found = await runner.call(alerts.evaluate, site)
            delivered = await alerts.deliver(found, site.alerts.webhook) if found else True
            summary["sites"].append({
                "site": site.id, "days": [d.isoformat() for d in result.days], "sessions": result.sessions,
                "seconds": round(result.seconds, 3), "alerts": [a.message for a in found],
                "webhook_delivered": delivered,
            })
        return summary


async def scheduled(settings: Settings, runner: StoreRunner, lock: asyncio.Lock, stopping: asyncio.Event) -> None:
    every = settings.rollup.every_s
    if every <= 0:
        return
    while not stopping.is_set():
        try:
            await asyncio.wait_for(stopping.wait(), timeout=every)
            return
        except TimeoutError:
            pass
        try:
            await run_pass(settings, runner, lock=lock)
        except Exception:
            log.exception("scheduled rollup failed; retrying at the next interval")
