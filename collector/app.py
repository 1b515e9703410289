"""The collector's aiohttp application factory.

`create_app(settings, writer=…, store=…)`: the accept side (beacons, snippet,
health, metrics, dashboard). What it needs of the store side comes in as a
`StoreView` (collector/storeview.py); `setup` lets the wiring attach the store
side to the same application first, so its cleanup runs last.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from chainlens.core import metrics
from chainlens.core.settings import Settings
from collector import beacon
from collector.cors import allowed_origins, cors_headers, preflight
from collector.dashboard import dashboard, dashboard_asset
from collector.privacy import forget_request
from collector.ratelimit import RateLimiter
from collector.spool import SpoolWriter
from collector.state import CONFIG, DRAINING, HINTS, LIMITER, SPOOL, STORE, VISITORS, Config
from collector.storeview import NoStore, StoreView
from collector.visitor import VisitorKeys
from sdk_js.render import read_switches, render_forms, render_risk
from sdk_js.render import render as render_snippet

log = logging.getLogger(__name__)

# Server options every collector runs with (`web.run_app`, `AppRunner`, test servers):
# the accept path inflates gzip itself, with its own cap against gzip bombs.
SERVER_OPTIONS: dict[str, Any] = {"auto_decompress": False}


def create_app(
    settings: Settings, *, writer: str = "w0", store: StoreView | None = None,
    setup: Callable[[web.Application], None] | None = None,
) -> web.Application:
    app = web.Application(client_max_size=settings.collector.max_body_bytes)
    app[CONFIG] = Config(settings, allowed_origins(settings))
    app[LIMITER] = RateLimiter(settings.collector.rate_limit_rps)
    app[HINTS] = {}
    app[DRAINING] = [False]
    app[VISITORS] = VisitorKeys(Path(settings.collector.spool_dir))
    app[STORE] = store or NoStore()
    if setup is not None:
        # Run first so what it registers is cleaned up last: the spool is closed, then drained.
        setup(app)
    app.cleanup_ctx.append(_spool_ctx(writer))
    app.cleanup_ctx.append(_publish_metrics)
    app.on_shutdown.append(_mark_draining)
    for method, path, handler in (
        ("POST", "/e", _beacon("e")),
        ("OPTIONS", "/e", preflight),
        ("POST", "/s2s", _beacon("s2s")),
        ("POST", "/forget", forget_request),
        ("GET", "/healthz", healthz),
        ("GET", "/readyz", readyz),
        ("GET", "/metrics", metrics_endpoint),
        ("GET", "/sdk/{site:[A-Za-z0-9_-]+}.js", sdk_script),
        ("GET", "/sdk/{site:[A-Za-z0-9_-]+}/risk.js", sdk_script),
        ("GET", "/sdk/{site:[A-Za-z0-9_-]+}/forms.js", sdk_script),
        ("GET", "/sdk/{site:[A-Za-z0-9_-]+}/hints", sdk_hints),
        ("GET", "/dashboard", dashboard),
        ("GET", "/dashboard/assets/{name}", dashboard_asset),
    ):
        app.router.add_route(method, path, observed(path, handler))
    return app


def apply(app: web.Application, settings: Settings) -> None:
    """Run with reloaded settings from the next request on (requests in flight finish with theirs)."""
    config = app[CONFIG]  # the same object: the app's state is frozen once it runs
    config.settings, config.origins = settings, allowed_origins(settings)
    app[LIMITER].rate = settings.collector.rate_limit_rps
    app[LIMITER].burst = max(1.0, 2 * settings.collector.rate_limit_rps)


def _spool_ctx(writer: str) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        cfg = app[CONFIG].settings.collector
        spool = SpoolWriter(Path(cfg.spool_dir), writer, max_bytes=cfg.spool_max_bytes)
        spool.open()
        app[SPOOL] = spool
        yield
        await spool.close()
    return ctx


async def _publish_metrics(app: web.Application) -> AsyncIterator[None]:
    """The accept path's counts reach prometheus-client once a second (chainlens.core.metrics)."""
    async def every_second() -> None:
        while True:
            await asyncio.sleep(metrics.PUBLISH_EVERY_S)
            metrics.publish()
    task = asyncio.create_task(every_second())
    yield
    task.cancel()
    metrics.publish()


async def _mark_draining(app: web.Application) -> None:
    app[DRAINING][0] = True


def _beacon(source: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        app = request.app
        settings = app[CONFIG].settings
        address = client_address(request, settings)
        wait = app[LIMITER].check(address)
        if wait:
            metrics.RATE_LIMITED.inc()
            return beacon.error_response(429, "rate limit exceeded", code="rate_limited", **{"Retry-After": str(wait)})
        response = await beacon.accept(request, settings=settings, spool=app[SPOOL], source=source,
                                       address=address, visitors=app[VISITORS])
        if source == "e":
            response.headers.update(cors_headers(request, app[CONFIG].origins))
        return response
    return handler


def client_address(request: web.Request, settings: Settings) -> str:
    """Used for rate limiting only, never stored."""
    if settings.collector.trust_forwarded:
        forwarded = beacon.header(request, "X-Forwarded-For")
        if forwarded:
            return forwarded.split(",")[0].strip()
    return request.remote or ""


async def sdk_script(request: web.Request) -> web.Response:
    """The site's snippet: cached per site and config, ETag, gzip, CORS for the SRI tag."""
    settings = request.app[CONFIG].settings
    site = settings.site(request.match_info["site"])
    if site is None:
        return beacon.error_response(404, f"unknown site {request.match_info['site']!r}", code="unknown_site")
    if request.path.endswith("/risk.js"):
        script = render_risk(site, public_url=settings.collector.url())
    elif request.path.endswith("/forms.js"):
        script = render_forms(site, public_url=settings.collector.url())
    else:  # the switches its tag names, so a settings change never breaks a page's SRI hash
        try:
            given = read_switches(request.query)
        except ValueError as exc:
            return beacon.error_response(400, str(exc), code="bad_envelope")
        script = render_snippet(site, public_url=settings.collector.url(), given=given)
    headers = {
        "ETag": script.etag,
        "Cache-Control": "public, max-age=300",
        "Access-Control-Allow-Origin": "*",  # `crossorigin="anonymous"` + SRI needs a CORS response
        "Vary": "Accept-Encoding",
    }
    if script.etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    body = script.body
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        body, headers["Content-Encoding"] = script.gzipped, "gzip"
    return web.Response(body=body, headers=headers, content_type="application/javascript", charset="utf-8")


async def metrics_endpoint(request: web.Request) -> web.Response:
    await store_status(request.app)  # refreshes the store process's gauges (spool backlog, age, store up)
    body, content_type = metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": content_type})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


async def readyz(request: web.Request) -> web.Response:
    """Ready when accepting (not draining) and the store is reachable."""
    state = await store_status(request.app)
    ready = not request.app[DRAINING][0] and bool(state.get("store_ok"))
    body = {"ready": ready, "draining": request.app[DRAINING][0], **state}
    return web.json_response(body, status=200 if ready else 503, dumps=lambda o: orjson.dumps(o).decode())


async def store_status(app: web.Application) -> dict:
    return await app[STORE].status()


# Unique per process and start, cheap on the hot path (no random bytes needed).
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]+")
_REQUEST_ID_PREFIX = f"{os.getpid():x}-{int(time.time()):x}-"
_request_numbers = itertools.count()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def observed(path: str, handler: Handler) -> Handler:
    """The route's handler with a request id on its answer (the client's own when it is made of
    safe characters), a count by route and status, a log line for each refusal, and a JSON 500
    naming the request id for an unexpected error. A wrapper per route rather than an aiohttp
    middleware, which would cost every request (docs/architecture.md, "Keeping the accept path
    fast"); paths that match no route get aiohttp's own 404 or 405."""
    route = _PATTERN.sub(r"{\1}", path)  # "/sdk/{site}.js", as Prometheus labels it

    async def handle(request: web.Request) -> web.StreamResponse:
        request_id = beacon.header(request, "X-Request-Id")[:64]
        if not _SAFE_ID.fullmatch(request_id):
            request_id = f"{_REQUEST_ID_PREFIX}{next(_request_numbers):x}"
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            exc.headers["X-Request-Id"] = request_id
            metrics.count(metrics.request_counter(route, exc.status))
            raise
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id, "path": request.path})
            response = beacon.error_response(500, "internal error", code="internal")
        response.headers["X-Request-Id"] = request_id
        if 400 <= response.status < 500 and response.status != 429:
            # Integration problems are worth a line each; rate limiting is counted in /metrics instead.
            log.info("request refused", extra={"request_id": request_id, "path": request.path,
                                               "status": response.status})
        metrics.count(metrics.request_counter(route, response.status))
        return response
    return handle


_PATTERN = re.compile(r"\{(\w+):[^}]*\}")


HINTS_TTL_S = 300.0
IDLE_FALLBACK_MS = 30_000.0


async def sdk_hints(request: web.Request) -> web.Response:
    """The risk script's runtime hints (docs/interventions.md): the site's intervention steps,
    holdout, triggers and idle thresholds in ms, fetched apart from the script so its SRI hash
    stays put. The thresholds come from the store every five minutes at most."""
    settings = request.app[CONFIG].settings
    site = settings.site(request.match_info["site"])
    if site is None:
        return beacon.error_response(404, f"unknown site {request.match_info['site']!r}", code="unknown_site")
    act = site.intervene
    cache = request.app[HINTS]
    cached = cache.get(site.id)
    if cached is None or time.monotonic() - cached[0] > HINTS_TTL_S:
        try:
            idle = await request.app[STORE].idle_ms(site.id) if act.steps else {}
        except (ValueError, aiohttp.ClientError, TimeoutError):
            idle = {step: IDLE_FALLBACK_MS for step in act.steps}  # the store is away: act on a default
        cached = cache[site.id] = (time.monotonic(), idle)
    # Pages the site's URL rules make an intervention step: the risk script knows its step from them
    # when the page does not name it (data-chain-step or the page API).
    def paths(steps: tuple[str, ...]) -> dict[str, list[str]]:
        return {step: ["^(?:" + rx.pattern + ")$" for rx, ruled in site.url_rules if ruled == step] for step in steps}
    body = {"steps": list(act.steps), "holdout": act.holdout, "triggers": list(act.triggers), "idle_ms": cached[1],
            "paths": paths(act.steps),
            # the forms add-on's (docs/snippet.md, "The forms add-on")
            "forms": {"steps": list(site.forms.steps), "paths": paths(site.forms.steps)}}
    return web.json_response(body, dumps=lambda o: orjson.dumps(o).decode(), headers={
        "Cache-Control": "public, max-age=300", "Access-Control-Allow-Origin": "*"})
