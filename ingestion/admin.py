"""The admin API of the process that owns the store: loopback only, bearer token.

`chainlens sql`, `import` and `rollup` use it while `serve` holds an embedded
directory; they open the store themselves when no service runs. `sql` is
read-only, here as offline, unless asked with `--write`: one SELECT-like
statement at a time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import ipaddress
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import orjson
from aiohttp import web

from chainlens.core.settings import Settings
from ingestion import schedule
from ingestion.imports import import_lines
from ingestion.runner import StoreRunner
from sdk_js.render import shopify_pixel, snippet_tag


class Service(Protocol):
    """What the admin API asks of the store process's service (ingestion/service.py registers it)."""

    settings: Settings
    runner: StoreRunner
    token: str
    rollup_lock: asyncio.Lock

    def state(self) -> dict[str, Any]: ...
    async def live(self, site_id: str) -> dict[str, Any]: ...
    async def idle_ms(self, site_id: str) -> dict[str, float]: ...
    async def report(self, query: Mapping[str, str]) -> dict[str, Any]: ...
    async def forget(self, request: Mapping[str, Any]) -> dict[str, Any]: ...
    async def export(self, request: Mapping[str, Any]) -> list[dict[str, Any]]: ...


SERVICE: web.AppKey[Service] = web.AppKey("store_service")

READ_ONLY = ("select", "with", "show", "describe", "desc", "explain", "exists")


def read_only_problem(query: str) -> str:
    """Why `query` is not a single read-only statement, or "".

    A `readonly` query setting would be the natural guard, but on the embedded
    engine it sticks to the shared session and then blocks the loader's inserts.
    """
    words = re.sub(r"--[^\n]*|/\*.*?\*/", " ", query, flags=re.S).split()
    if not words or words[0].lower() not in READ_ONLY:
        return ("chainlens sql runs read-only queries (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN) unless --write: "
                "writes by hand can leave the tables inconsistent (docs/architecture.md, \"Writing by hand\")")
    if ";" in query.strip().rstrip(";") or re.search(r"\binto\s+outfile\b", query, re.I):
        return "one read-only statement at a time, without INTO OUTFILE"
    return ""


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/status", status)
    app.router.add_post("/admin/sql", sql)
    app.router.add_post("/admin/import", import_chunk)
    app.router.add_post("/admin/rollup", run_rollup)
    app.router.add_get("/admin/report", report_data)
    app.router.add_get("/admin/snippet", snippet)
    app.router.add_get("/admin/live", live)
    app.router.add_get("/admin/idle", idle)
    app.router.add_post("/admin/forget", forget)
    app.router.add_post("/admin/export", export)


def authorize(request: web.Request) -> None:
    peer = request.transport.get_extra_info("peername") if request.transport else None
    if not peer or not ipaddress.ip_address(peer[0]).is_loopback:
        raise web.HTTPForbidden(text='{"error": "the admin API answers loopback clients only"}',
                                content_type="application/json")
    expected = request.app[SERVICE].token
    given = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
        raise web.HTTPUnauthorized(text='{"error": "admin token required"}', content_type="application/json")


def _json(obj: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


async def status(request: web.Request) -> web.Response:
    authorize(request)
    return _json(request.app[SERVICE].state())


async def sql(request: web.Request) -> web.Response:
    authorize(request)
    body = orjson.loads(await request.read())
    query, fmt, params = body["query"], body.get("format", "PrettyCompact"), body.get("parameters")
    problem = "" if body.get("write") is True else read_only_problem(query)
    if problem:
        return _json({"error": problem}, status=400)
    try:
        out = await request.app[SERVICE].runner.call(lambda client: client.raw_query(query, parameters=params, fmt=fmt))
    except Exception as exc:
        return _json({"error": str(exc).strip()}, status=400)
    return web.Response(body=out, content_type="text/plain")


async def import_chunk(request: web.Request) -> web.Response:
    authorize(request)
    site = request.app[SERVICE].settings.site(request.query.get("site", ""))
    if site is None:
        return _json({"error": f"unknown site {request.query.get('site', '')!r}"}, status=404)
    first = int(request.query.get("first_line", "1"))
    lines = (await request.read()).split(b"\n")
    report = await request.app[SERVICE].runner.call(import_lines, lines, site=site, first_line=first)
    return _json(report)


async def run_rollup(request: web.Request) -> web.Response:
    authorize(request)
    body = orjson.loads(await request.read() or b"{}")
    try:
        since, until = (dt.date.fromisoformat(body[k]) if body.get(k) else None for k in ("since", "until"))
    except ValueError as exc:
        return _json({"error": f"not a date (YYYY-MM-DD): {exc}"}, status=400)
    service = request.app[SERVICE]
    summary = await schedule.run_pass(service.settings, service.runner, lock=service.rollup_lock,
                                      since=since, until=until)
    return _json(summary)


async def report_data(request: web.Request) -> web.Response:
    """The dashboard's figures: ?site=ID&from=YYYY-MM-DD&to=YYYY-MM-DD (default: the last 7 rolled-up days)."""
    authorize(request)
    try:
        data = await request.app[SERVICE].report(request.query)
    except ValueError as exc:
        return _json({"error": str(exc)}, status=400)
    return _json(data)


async def forget(request: web.Request) -> web.Response:
    """Erase a person: {"site", "what": user|visitor|order, "key", "dry_run"} (docs/privacy.md),
    answered when done with what went, per table."""
    authorize(request)
    try:
        return _json(await request.app[SERVICE].forget(orjson.loads(await request.read())))
    except (ValueError, orjson.JSONDecodeError) as exc:
        return _json({"error": str(exc)}, status=400)
    except TimeoutError as exc:
        return _json({"error": str(exc)}, status=503)


async def export(request: web.Request) -> web.Response:
    """Everything stored about a person, as JSON lines: {"site", "what": user|visitor, "key"}."""
    authorize(request)
    try:
        lines = await request.app[SERVICE].export(orjson.loads(await request.read()))
    except (ValueError, orjson.JSONDecodeError) as exc:
        return _json({"error": str(exc)}, status=400)
    body = b"".join(orjson.dumps(line, default=str) + b"\n" for line in lines)
    return web.Response(body=body, content_type="application/x-ndjson")


async def snippet(request: web.Request) -> web.Response:
    """What this running service serves for ?site=ID: the tag with its SRI hash (or, with
    &shopify=1, the Shopify pixel), from the settings it runs with now."""
    authorize(request)
    settings = request.app[SERVICE].settings
    site = settings.site(request.query.get("site", ""))
    if site is None:
        return _json({"error": f"unknown site {request.query.get('site', '')[:64]!r}"}, status=404)
    make = shopify_pixel if request.query.get("shopify") else snippet_tag
    return web.Response(text=make(site, public_url=settings.collector.url()), content_type="text/plain")


async def idle(request: web.Request) -> web.Response:
    """The idle thresholds of ?site=ID's intervention steps (docs/interventions.md)."""
    return await _for_site(request, request.app[SERVICE].idle_ms)


async def live(request: web.Request) -> web.Response:
    """Is data arriving for ?site=ID (ingestion/live.py)."""
    return await _for_site(request, request.app[SERVICE].live)


async def _for_site(request: web.Request, answer: Callable[[str], Awaitable[Any]]) -> web.Response:
    authorize(request)
    try:
        return _json(await answer(request.query.get("site", "")))
    except ValueError as exc:  # an unknown site
        return _json({"error": str(exc)}, status=404)
