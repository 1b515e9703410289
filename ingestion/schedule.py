"""The rollup pass (rollup, then early warnings), the live pass, and their schedules inside `serve`."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from chainlens.core import clock
from chainlens.core.settings import Settings, is_embedded
from ingestion import alerts, lease, lifecycle, live_alerts
from ingestion.rollup import rollup
from ingestion.runner import StoreNotReady, StoreRunner

log = logging.getLogger(__name__)


async def run_pass(settings: Settings, runner: StoreRunner, *, lock: asyncio.Lock, since: dt.date | None = None,
                   until: dt.date | None = None,
                   progress: Callable[[int, int], None] | None = None,
                   holder: str | None = None) -> dict[str, Any]:
    """Rollup every site, then evaluate and deliver its alerts. One pass at a time.

    A store that several collector nodes share (a server DSN) runs one pass at a
    time across all of them: the pass takes the rollup lease first and is skipped
    while another runner holds it (ingestion/lease.py). An embedded store has a
    single owner, so no lease is needed unless `holder` names one.
    """
    async with lock:
        if holder is None and not is_embedded(settings.store.dsn):
            holder = lease.holder_name()
        if holder is None:
            return await _pass(settings, runner, since=since, until=until, progress=progress)
        other = await lease.take(runner, holder)
        if other is not None:
            until_text = other.expires.isoformat(timespec="seconds")
            log.info("rollup pass skipped: another runner holds the lease",
                     extra={"holder": other.holder, "until": until_text})
            return {"sites": [], "skipped": {"holder": other.holder, "until": until_text}}
        renew = asyncio.create_task(lease.keep(runner, holder))
        try:
            return await _pass(settings, runner, since=since, until=until, progress=progress)
        finally:
            renew.cancel()
            await lease.release(runner, holder)


T = TypeVar("T")


async def exclusively(settings: Settings, runner: StoreRunner, lock: asyncio.Lock, fn: Callable[..., T], *args: Any,
                      wait_s: float = 600, **kwargs: Any) -> T:
    """`fn(client, …)` with no rollup pass running: this process's lock and, on a server store that
    several nodes share, the rollup lease, waited for (a forget must not race a pass that read the
    events it removes)."""
    async with lock:
        if is_embedded(settings.store.dsn):
            return await runner.call(fn, *args, **kwargs)
        holder, deadline = lease.holder_name(), time.monotonic() + wait_s
        while (other := await lease.take(runner, holder)) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{other.holder} has held the rollup lease for {wait_s:.0f} s; try again")
            await asyncio.sleep(2)
        renew = asyncio.create_task(lease.keep(runner, holder))
        try:
            return await runner.call(fn, *args, **kwargs)
        finally:
            renew.cancel()
            await lease.release(runner, holder)


async def _pass(settings: Settings, runner: StoreRunner, *, since: dt.date | None, until: dt.date | None,
                progress: Callable[[int, int], None] | None) -> dict[str, Any]:
    now = clock.now()
    results = await runner.call(rollup, settings, now=now, since=since, until=until, progress=progress)
    summary: dict[str, Any] = {"sites": []}
    for site, result in zip(settings.sites, results, strict=True):
        expired = await runner.call(lifecycle.expire, site, now=now)  # docs/privacy.md, "Retention"
        if expired:
            log.info("retention applied", extra={"site": site.id, "rows": expired})
        found = await runner.call(alerts.evaluate, site, timeout_s=settings.rollup.session_timeout_s)
        delivered = await alerts.deliver(found, site.alerts.webhook) if found else True
        summary["sites"].append({
            "site": site.id, "days": [d.isoformat() for d in result.days], "sessions": result.sessions,
            "seconds": round(result.seconds, 3), "alerts": [a.message for a in found],
            "webhook_delivered": delivered, "expired": expired,
        })
    return summary


async def scheduled(current: Callable[[], Settings], runner: StoreRunner, lock: asyncio.Lock,
                    stopping: asyncio.Event, after: Callable[[], Awaitable[None]] | None = None) -> None:
    """A pass every `rollup.every_s`, each with the settings in force then (a reload changes sites),
    then `after` (the dashboard's default views computed again)."""
    settings = current()
    every = settings.rollup.every_s
    if every <= 0 or not settings.rollup.enabled:
        log.info("scheduled rollups off on this node", extra={"every_s": every, "enabled": settings.rollup.enabled})
        return
    while not stopping.is_set():
        try:
            await asyncio.wait_for(stopping.wait(), timeout=every)
            return
        except TimeoutError:
            pass
        try:
            await run_pass(current(), runner, lock=lock)
            if after is not None:
                await after()
        except Exception:
            log.exception("scheduled rollup failed; retrying at the next interval")


async def live(current: Callable[[], Settings], runner: StoreRunner, stopping: asyncio.Event,
               now: Callable[[], dt.datetime] = clock.now) -> None:
    """The live early warning: every `live_every_s` (the shortest of the sites'), each site with
    `[sites.alerts] live` is judged on its open sessions at the process's `now`, and what opens or
    resolves is sent to its webhook at once (docs/metrics.md, "Live early warning"). `runner` is
    one beside the store's (StoreRunner.beside), so that a pass does not wait behind a rollup."""
    if not current().rollup.enabled:
        return  # the nodes that run the rollups run the live pass
    detector = live_alerts.Detector()
    sending: set[asyncio.Task[bool]] = set()
    while not stopping.is_set():
        settings = current()
        sites = [s for s in settings.sites if s.alerts.live]
        every = min((s.alerts.live_every_s for s in sites), default=60)
        try:
            await asyncio.wait_for(stopping.wait(), timeout=max(1, every))
            return
        except TimeoutError:
            pass
        for site in sites:
            try:
                found = await runner.call(detector.evaluate, site, now=now(),
                                          timeout_s=settings.rollup.session_timeout_s)
            except StoreNotReady:
                break  # the store process is still making the schema: the next interval
            except Exception:
                log.exception("live early warning failed; retrying at the next interval", extra={"site": site.id})
                continue
            if found and site.alerts.webhook:
                task = asyncio.create_task(alerts.deliver(found, site.alerts.webhook))
                sending.add(task)
                task.add_done_callback(sending.discard)
