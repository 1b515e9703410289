"""`GET /dashboard`: the store manager's view, rendered server-side.

HTML from a jinja2 template, charts as inline SVG: no CDN, no JavaScript, works
offline. Loopback clients only, unless `collector.dashboard_token` is set and
given (`?token=` or `Authorization: Bearer`). The figures come from the store
side through the app's `StoreView`.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
from typing import Any

import aiohttp
import jinja2
from aiohttp import web
from markupsafe import Markup, escape

from chainlens.core.settings import Settings
from collector.state import CONFIG, STORE

BAR_H, GAP, LABEL_W, WIDTH = 22, 6, 260, 760


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


def bars(rows: list[dict[str, Any]], *, label: str, value: str, text: Any = None, color: str = "#3b6ea8",
         whisker: str | None = None) -> Markup:
    """A horizontal bar chart as inline SVG; `whisker` draws a second value (e.g. p90) as a line."""
    values = [float(r[value] or 0) for r in rows] + [float(r[whisker] or 0) for r in rows if whisker]
    top = max(values, default=0) or 1
    scale = (WIDTH - LABEL_W - 90) / top
    height = len(rows) * (BAR_H + GAP) + GAP
    parts = [f'<svg class="chart" role="img" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}">']
    for i, row in enumerate(rows):
        y = GAP + i * (BAR_H + GAP)
        w = max(1.0, float(row[value] or 0) * scale)
        shown = text(row) if text else row[value]
        parts.append(f'<text x="{LABEL_W - 8}" y="{y + 15}" text-anchor="end">{escape(row[label])}</text>')
        parts.append(f'<rect x="{LABEL_W}" y="{y}" width="{w:.1f}" height="{BAR_H}" fill="{color}" rx="3"/>')
        if whisker and row[whisker] is not None:
            x2 = LABEL_W + float(row[whisker]) * scale
            parts.append(f'<line x1="{LABEL_W + w:.1f}" x2="{x2:.1f}" y1="{y + BAR_H / 2}" y2="{y + BAR_H / 2}" '
                         f'stroke="#888" stroke-width="2"/><line x1="{x2:.1f}" x2="{x2:.1f}" y1="{y + 4}" '
                         f'y2="{y + BAR_H - 4}" stroke="#888" stroke-width="2"/>')
        end = LABEL_W + max(w, (float(row[whisker] or 0) * scale) if whisker else 0)
        parts.append(f'<text x="{end + 6:.1f}" y="{y + 15}">{escape(shown)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def charts(data: dict[str, Any]) -> dict[str, Any]:
    busiest = sorted(data["timing"], key=lambda r: -r["transitions"])[:12]
    for row in busiest:
        row["label"] = f"{row['step']} → {row['next_step']}"
    return {
        "trends": trends(data.get("checkout_by_day", [])),
        "funnel": bars(data["funnel"], label="step", value="reached"),
        "checkout": bars(data["checkout"], label="step", value="abandonment_rate", color="#c0392b",
                         text=lambda r: f"{pct(r['abandonment_rate'])} of {r['reached']}"),
        "timing": bars(busiest, label="label", value="p50_ms", whisker="p90_ms", color="#5b8c5a",
                       text=lambda r: f"{secs(r['p50_ms'])} / {secs(r['p90_ms'])}"),
    }


def trends(rows: list[dict[str, Any]], *, width: int = 240, height: int = 60) -> list[tuple[str, Markup]]:
    """One small line chart per checkout step: its abandonment rate by day (inline SVG, 0–100%)."""
    by_step: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_step.setdefault(row["step"], []).append(row)
    out = []
    for step, points in by_step.items():
        n = len(points)
        xy = [(4 + (width - 8) * (i / (n - 1) if n > 1 else 0.5),
               height - 4 - (height - 8) * float(p["abandonment_rate"])) for i, p in enumerate(points)]
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5"><title>{escape(str(p["day"]))}: '
                       f'{pct(float(p["abandonment_rate"]))} of {p["reached"]}</title></circle>'
                       for (x, y), p in zip(xy, points, strict=True))
        out.append((step, Markup(
            f'<svg class="trend" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'data-step="{escape(step)}"><polyline fill="none" stroke="#c0392b" stroke-width="2" points="{line}"/>'
            f'<g fill="#c0392b">{dots}</g></svg>')))
    return out


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
        data=data, live=live, charts=charts(data), sites=[s.id for s in settings.sites],
        token=request.query.get("token", ""))
    return web.Response(text=html, content_type="text/html")
