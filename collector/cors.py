"""CORS for browser beacons: each site names the origins its pages are served from.

`navigator.sendBeacon` with text/plain needs no preflight; `fetch` with
application/json or gzip does, and the preflight carries no body, so it is
answered for any origin that some site allows; the POST is then checked
against the site it names.
"""

from __future__ import annotations

from aiohttp import web

from chainlens.core.settings import Settings
from collector.beacon import header
from collector.state import CONFIG


def allowed_origins(settings: Settings) -> frozenset[str]:
    return frozenset(o for site in settings.sites for o in site.origins)


def cors_headers(request: web.Request, origins: frozenset[str]) -> dict[str, str]:
    origin = header(request, "Origin")
    # "null": sandboxed frames, such as Shopify's custom pixels, have an opaque origin (docs/snippet.md).
    if origin and (origin in origins or origin == "null"):
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
    return {"Vary": "Origin"}


async def preflight(request: web.Request) -> web.Response:
    origin = header(request, "Origin")
    if origin not in request.app[CONFIG].origins:
        return web.json_response({"error": f"origin {origin!r} is not allowed"}, status=403)
    return web.Response(status=204, headers={
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Content-Type, Content-Encoding",
        "Access-Control-Max-Age": "86400",
        "Vary": "Origin",
    })
