"""`GET /dashboard`: the store manager's view, rendered server-side.

HTML from a jinja2 template. Bars are page text and CSS; the time series are drawn
in the browser by uPlot, which the collector serves from the npm package `make`
installed (no CDN: it works offline), over per-day tables that carry the same
values. Loopback clients only, unless `collector.dashboard_token` is set and
given (`?token=` or `Authorization: Bearer`). The figures come from the store
side through the app's `StoreView`.
"""

from __future__ import annotations

import datetime as dt
import functools
import hmac
import ipaddress
import os
import sys
from pathlib import Path
from typing import Any

import aiohttp
import jinja2
from aiohttp import web
from markupsafe import Markup, escape

from chainlens.core.settings import Settings
from collector.state import CONFIG, STORE


@functools.cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("collector", "templates"), autoescape=True)
    env.globals.update(pct=pct, secs=secs, money=money, change=change, clock=clock)
    return env


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def money(value: float | None, currency: str = "") -> str:
    return "–" if value is None else f"{value:,.2f} {currency}".strip()


def change(now: float | None, before: float | None, *, points: bool = False) -> str:
    """The change against the previous period: relative for amounts, in points for rates."""
    if now is None or before is None:
        return "no earlier data"
    if points:
        return f"{(now - before) * 100:+.1f} pp"
    if not before:
        return "new" if now else "±0%"
    return f"{now / before - 1:+.1%}"


def clock(value: Any) -> str:
    """A time as month-day hour:minute (UTC), whether it came as a datetime or as ISO text."""
    if isinstance(value, str):
        return value[5:16].replace("T", " ")
    return value.strftime("%m-%d %H:%M") if value else "–"


def secs(ms: float | None) -> str:
    if ms is None:
        return "–"
    s = ms / 1000
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def bars(rows: list[dict[str, Any]], *, label: str, value: str, text: Any = None, tone: str = "",
         whisker: str | None = None, name: str = "") -> Markup:
    """A horizontal bar chart in HTML: each row's label, bar and value in page text, so they stay
    readable at any width; `whisker` marks a second value (e.g. p90) on the same scale."""
    values = [float(r[value] or 0) for r in rows] + [float(r[whisker] or 0) for r in rows if whisker]
    top = max(values, default=0) or 1
    parts = [f'<ul class="bars {tone}" data-chart="{escape(name)}">']
    for row in rows:
        shown = text(row) if text else row[value]
        mark = ""
        if whisker and row[whisker] is not None:
            mark = f'<i class="whisker" style="left: {float(row[whisker]) / top * 100:.1f}%"></i>'
        parts.append(f'<li><span class="label">{escape(row[label])}</span><span class="track">'
                     f'<b style="width: {max(0.5, float(row[value] or 0) / top * 100):.1f}%"></b>{mark}</span>'
                     f'<span class="value">{escape(shown)}</span></li>')
    parts.append("</ul>")
    return Markup("".join(parts))


def charts(data: dict[str, Any]) -> dict[str, Any]:
    busiest = sorted(data["timing"], key=lambda r: -r["transitions"])[:12]
    for row in busiest:
        row["label"] = f"{row['step']} → {row['next_step']}"
    return {
        "trends": trends(data.get("checkout_by_day", []), data.get("checkout_by_day_before", []),
                         start=data["start"], previous=data["previous"][0]),
        "funnel": bars(data["funnel"], label="step", value="reached", name="funnel"),
        "checkout": bars(data["checkout"], label="step", value="abandonment_rate", tone="bad", name="checkout",
                         text=lambda r: f"{pct(r['abandonment_rate'])} of {r['reached']}"),
        "timing": bars(busiest, label="label", value="p50_ms", whisker="p90_ms", tone="good", name="timing",
                       text=lambda r: f"{secs(r['p50_ms'])} / {secs(r['p90_ms'])}"),
    }


def trends(rows: list[dict[str, Any]], before: list[dict[str, Any]], *, start: str,
           previous: str) -> list[dict[str, Any]]:
    """Per checkout step, its abandonment rate by day for the uPlot charts (docs/dashboard.md):
    this period's days as Unix seconds, and the previous period's rate on the same day offset."""
    first, earlier = dt.date.fromisoformat(start), dt.date.fromisoformat(previous)
    shift = first - earlier
    prior: dict[tuple[str, dt.date], float] = {
        (r["step"], _day(r["day"]) + shift): float(r["abandonment_rate"]) for r in before}
    by_step: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_step.setdefault(row["step"], []).append(row)
    out = []
    for step, points in by_step.items():
        days = [_day(p["day"]) for p in points]
        out.append({
            "step": step,
            "x": [int(dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC).timestamp()) for d in days],
            "y": [float(p["abandonment_rate"]) for p in points],
            "prev": [prior.get((step, d)) for d in days],
            "reached": [int(p["reached"]) for p in points],
            "days": [d.isoformat() for d in days],
        })
    return out


def _day(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


# The chart library, installed from the npm registry by `make` into the venv (Makefile, JS_PACKAGES);
# CHAINLENS_JS_DIR points elsewhere. Without it the dashboard shows its tables and no charts.
JS_DIR = Path(os.environ.get("CHAINLENS_JS_DIR") or Path(sys.prefix) / "js" / "node_modules")
ASSETS = {"uPlot.iife.min.js": ("uplot/dist/uPlot.iife.min.js", "text/javascript"),
          "uPlot.min.css": ("uplot/dist/uPlot.min.css", "text/css")}


@functools.cache
def _asset(name: str) -> bytes | None:
    path = JS_DIR / ASSETS[name][0]
    return path.read_bytes() if path.is_file() else None


def charts_installed() -> bool:
    return all(_asset(name) is not None for name in ASSETS)


async def dashboard_asset(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    body = _asset(name) if name in ASSETS else None
    if body is None:
        raise web.HTTPNotFound(text=f"{name}: not installed (run make, which installs uPlot from npm)")
    return web.Response(body=body, content_type=ASSETS[name][1], headers={"Cache-Control": "max-age=86400"})


def allowed(request: web.Request, settings: Settings) -> bool:
    token = settings.collector.dashboard_token
    given = request.query.get("token") or request.headers.get("Authorization", "").removeprefix("Bearer ")
    if token and given and hmac.compare_digest(given.encode(), token.encode()):
        return True
    try:
        return ipaddress.ip_address(request.remote or "").is_loopback
    except ValueError:
        return False


def _store_unavailable(reason: str) -> web.Response:
    """A page that says what is wrong, instead of figures from nowhere or a bare 500."""
    html = _env().get_template("unavailable.html").render(reason=reason)
    return web.Response(text=html, status=503, content_type="text/html", headers={"Retry-After": "10"})


async def dashboard(request: web.Request) -> web.Response:
    settings = request.app[CONFIG].settings
    if not allowed(request, settings):
        raise web.HTTPForbidden(text="The dashboard answers loopback clients, or a valid ?token=.")
    query = {k: v for k, v in request.query.items()
             if k in ("site", "from", "to", "stopped", "device", "segment") and v}
    state = await request.app[STORE].status()
    if not state.get("store_ok"):
        return _store_unavailable(state.get("last_error") or "the store is not reachable")
    try:
        data = await request.app[STORE].report(query)
    except ValueError as exc:
        state = await request.app[STORE].status()
        if not state.get("store_ok"):
            return _store_unavailable(state.get("last_error") or str(exc))
        raise web.HTTPBadRequest(text=str(exc)) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        return _store_unavailable(f"the store process did not answer: {exc}")
    try:
        live = await request.app[STORE].live(str(data["site"]))
    except (ValueError, aiohttp.ClientError, TimeoutError):
        live = None
    html = _env().get_template("dashboard.html").render(
        data=data, live=live, charts=charts(data), charts_installed=charts_installed(),
        sites=[s.id for s in settings.sites],
        token=request.query.get("token", ""))
    return web.Response(text=html, content_type="text/html")
