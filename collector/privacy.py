"""A back office's erasure request: `POST /forget` (docs/privacy.md, "Forgetting a shopper").

The body names the site and one of `user`, `visitor` or `order`, with `dry_run` to only see
what would go; it carries the site's secret as /s2s does. The answer comes when the person's
rows are gone and the days that counted them are rebuilt: 200 with what went, per table.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
from aiohttp import web

from chainlens.core.refusals import BeaconError
from collector.beacon import check_secret, error_response
from collector.state import CONFIG, STORE

KINDS = ("user", "visitor", "order")


async def forget_request(request: web.Request) -> web.Response:
    settings = request.app[CONFIG].settings
    try:
        body: Any = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return error_response(400, "the body is not JSON", code="bad_body")
    if not isinstance(body, dict):
        return error_response(400, 'the body must be {"site": …, "user" | "visitor" | "order": …}',
                              code="bad_envelope")
    site = settings.site(str(body.get("site", ""))[:64])
    if site is None:
        return error_response(404, f"unknown site {str(body.get('site', ''))[:64]!r}", code="unknown_site")
    try:
        check_secret(request, site)
    except BeaconError as exc:
        return error_response(exc.status, exc.message.replace("/s2s", "/forget"), code=exc.code)
    named = [k for k in KINDS if k in body]
    if len(named) != 1 or not isinstance(body[named[0]], str) or not body[named[0]]:
        return error_response(400, "name exactly one of user, visitor or order, with its id as a string",
                              code="bad_envelope")
    try:
        summary = await request.app[STORE].forget({"site": site.id, "what": named[0], "key": body[named[0]],
                                                   "dry_run": body.get("dry_run") is True})
    except ValueError as exc:
        return error_response(400, str(exc), code="bad_envelope")
    except (TimeoutError, aiohttp.ClientError) as exc:
        return error_response(503, f"the store cannot forget now: {exc}", code="overloaded",
                              **{"Retry-After": "30"})
    return web.json_response(summary, dumps=lambda v: orjson.dumps(v).decode())
