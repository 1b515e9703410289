"""The accept path: read a beacon, validate each event, spool it, answer 202.

A request that cannot be read at all gets a 4xx naming the problem; each
invalid event in a readable request is rejected on its own. Both kinds are
kept in `events_rejected` (through the spool, like accepted events), so
nothing that arrives is silently dropped. Nothing a client sends leads to a 5xx.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import logging
import time
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from chainlens.core import decoding, metrics
from chainlens.core.agents import client_from_ua
from chainlens.core.fields import SERVER_SOURCES, Client
from chainlens.core.refusals import BeaconError, rejected_row
from chainlens.core.rows import Intake, build_rows, fast_rows
from chainlens.core.settings import Settings, Site
from collector.spool import SpoolFull, SpoolWriter
from collector.visitor import VisitorKeys

log = logging.getLogger(__name__)

JSON_TYPES = ("text/plain", "application/json", "")


def header(request: web.Request, name: str, default: str = "") -> str:
    """A request header as text that is safe to compare, hash, log and answer with: bytes that
    are not UTF-8 (aiohttp keeps them as surrogate escapes) become U+FFFD."""
    value = request.headers.get(name)
    if value is None:
        return default
    if value.isascii():
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def content_type(request: web.Request) -> str:
    """The media type alone, lower-cased; parameters (charset…) play no part."""
    return header(request, "Content-Type").split(";", 1)[0].strip().lower()


async def read_body(request: web.Request, *, max_body: int, max_decompressed: int, timeout_s: float = 15.0) -> bytes:
    """The request body, decompressed, within the size caps (413 past them) and the time limit (408)."""
    media = content_type(request)
    if media not in JSON_TYPES:
        raise BeaconError(415, f"unsupported Content-Type {media[:100]!r}: send text/plain or application/json",
                          code="unsupported_type", detail=media[:100])
    encoding = header(request, "Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise BeaconError(415, f"unsupported Content-Encoding {encoding[:100]!r}: send gzip or none",
                          code="unsupported_encoding", detail=encoding[:100])
    if request.content_length is not None and request.content_length > max_body:
        raise BeaconError(413, f"body of {request.content_length} bytes is over the {max_body}-byte limit",
                          code="too_large")
    # aiohttp's server may inflate gzip bodies as they stream in (its auto_decompress),
    # so the stream is capped at the decompressed limit and inflated here only when
    # it still starts with the gzip magic bytes; JSON never does.
    gzipped = encoding == "gzip"
    cap = max_decompressed if gzipped else max_body
    if not gzipped and request.content_length is not None and request.content.total_bytes >= request.content_length:
        return await request.content.read()  # already all here (a beacon usually is): no timer, no loop
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout_s):  # a body trickled in (slow POST) holds a handler no longer
            async for chunk in request.content.iter_chunked(1 << 16):
                size += len(chunk)
                if size > cap:  # stop reading at the cap, whatever the sender claims
                    raise BeaconError(413, f"body decompresses past the {cap}-byte limit" if gzipped
                                      else f"body is over the {cap}-byte limit", code="too_large")
                chunks.append(chunk)
    except TimeoutError:
        raise BeaconError(408, f"body not received within {timeout_s:g} s", code="timeout") from None
    except (RequestPayloadError, HttpProcessingError) as exc:
        raise BeaconError(400, "body is not valid gzip" if gzipped else f"body could not be read: {exc}",
                          code="bad_body") from None
    body = b"".join(chunks)
    if gzipped and not body:  # nothing sent, or a stream cut before its first block was inflated upstream
        raise BeaconError(400, "body is not valid gzip: no data", code="bad_body")
    if gzipped and body[:2] == b"\x1f\x8b":
        inflater = zlib.decompressobj(wbits=31)
        try:
            body = inflater.decompress(body, max_decompressed + 1)
        except zlib.error:
            raise BeaconError(400, "body is not valid gzip", code="bad_body") from None
        if not inflater.eof and len(body) <= max_decompressed:
            raise BeaconError(400, "body is not valid gzip: the stream is cut short", code="bad_body")
        if len(body) > max_decompressed:
            raise BeaconError(413, f"body decompresses past the {max_decompressed}-byte limit", code="too_large")
    return body


def check_origin(request: web.Request, site: Site) -> None:
    origin = header(request, "Origin")
    # No Origin: a server-side sender or a tool; browsers always send one on POST.
    if origin and origin != "null" and origin not in site.origins:
        raise BeaconError(403, f"origin {origin[:200]!r} is not allowed for site {site.id!r}",
                          code="origin_refused", field="origin", detail=origin)


def check_secret(request: web.Request, site: Site) -> None:
    auth = header(request, "Authorization")
    token = auth[7:] if auth.startswith("Bearer ") else ""
    if not site.secret or not hmac.compare_digest(token.encode(), site.secret.encode()):
        raise BeaconError(401, "Authorization: a valid 'Bearer <site secret>' is required for /s2s",
                          code="unauthorized", field="Authorization")


@dataclass
class Parsed:
    """A readable request: its site, client clock, and events (typed when the fast decode took them)."""

    site_id: str
    sent_at: int | None
    events: list[Any]
    nostore: bool
    typed: bool
    body: bytes = b""


def parse(body: bytes, *, max_events: int) -> Parsed:
    """The envelope, typed in C when the whole body is as declared, else parsed leniently (BeaconError)."""
    envelope = decoding.decode(body)
    if envelope is None:
        text = decoding.utf8_text(body)
        if text is not body:  # re-encoded (a byte order mark, UTF-16/32): decode the UTF-8 text
            body, envelope = text, decoding.decode(text)
    if envelope is not None and len(envelope.events) <= max_events:
        sent_at = None if envelope.sent_at is None else int(envelope.sent_at)
        return Parsed(envelope.site, sent_at, envelope.events, envelope.nostore, typed=True, body=body)
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BeaconError(400, f"body is not valid JSON: {exc.msg} at byte {exc.pos}", code="bad_body") from None
    return Parsed(*decoding.parse_envelope(parsed, max_events=max_events), typed=False)


SERVER_SENDER = Client(device="", browser="", os="", is_bot=False)


def check_sender(request: web.Request, site: Site, source: str) -> None:
    if source == "s2s":
        check_secret(request, site)
    else:
        check_origin(request, site)


def intake(parsed: Parsed, *, site: Site, client: Client, received_ms: int, source: str) -> Intake:
    """Rows from the fast path when every event passes, else from the per-event reader that names problems."""
    events = parsed.events
    if parsed.typed:
        rows = fast_rows(events, site=site, client=client, received_ms=received_ms, sent_at=parsed.sent_at,
                                  source=source)
        if rows is not None:
            return Intake(rows=rows)
        try:  # as received, for the reasons and the kept payloads
            events = orjson.loads(parsed.body)["events"]
        except orjson.JSONDecodeError as exc:  # the typed decoder let through what JSON does not allow
            raise BeaconError(400, f"body is not valid JSON: {exc.msg} at byte {exc.pos}", code="bad_body") from None
    return build_rows(events, site=site, client=client, received_ms=received_ms,
                               sent_at=parsed.sent_at, source=source)


async def accept(
    request: web.Request, *, settings: Settings, spool: SpoolWriter, source: str, address: str = "",
    visitors: VisitorKeys | None = None,
) -> web.Response:
    """Read, check, validate, spool, answer: 202 once every accepted event is on disk."""
    received_ms = int(time.time() * 1000)
    cfg = settings.collector
    body = b""
    site_hint = ""
    try:
        body = await read_body(request, max_body=cfg.max_body_bytes, max_decompressed=cfg.max_decompressed_bytes,
                               timeout_s=cfg.idle_timeout_s)
        parsed = parse(body, max_events=cfg.max_events)
        site_hint = parsed.site_id
        site = settings.site(parsed.site_id)
        if site is None:
            raise BeaconError(404, f"unknown site {parsed.site_id[:64]!r}", code="unknown_site", field="site",
                              detail=parsed.site_id[:64])
        check_sender(request, site, source)
        user_agent = header(request, "User-Agent")
        # The back office is no browser (and no bot): its reports are about orders, not visits.
        sender = SERVER_SENDER if source in SERVER_SOURCES else client_from_ua(user_agent)
        result = intake(parsed, site=site, client=sender, received_ms=received_ms, source=source)
    except BeaconError as exc:
        metrics.REJECTED.labels(f"request_{exc.status}").inc()
        REFUSALS.note(site_hint if isinstance(site_hint, str) else "", exc.code, f"{exc.status}: {exc.message}")
        await _keep_rejected_request(spool, exc, received_ms=received_ms, site=site_hint or _site_of(body),
                                     source=source, body=body)
        return _json(exc.body(), status=exc.status)
    if (site.cookieless or parsed.nostore) and visitors is not None and result.rows and source == "e":
        # The snippet stored nothing (a cookieless site, or a browser that refuses storage):
        # one visitor key per day stands in for its identifiers.
        key = visitors.key(site=site.id, address=address, user_agent=user_agent)
        for row in result.rows:
            row.session_id = row.anon_id = key
    try:
        await spool.append(received_ms, result.rows, result.rejected)
    except SpoolFull as exc:
        metrics.SPOOL_FULL.inc()
        return overloaded(str(exc))
    return answer(site.id, result)


class RefusalLog:
    """One warning per site and kind of refusal per minute while refusals go on, with how many
    there were since the last one: a misconfigured site shows in the log without flooding it."""

    def __init__(self, every_s: float = 60.0) -> None:
        self.every_s = every_s
        self.seen: dict[tuple[str, str], list[float]] = {}  # key → [last logged at, refusals since]

    def note(self, site: str, code: str, reason: str) -> None:
        key = (site[:64], code)
        now = time.monotonic()
        entry = self.seen.get(key)
        if entry is None:
            if len(self.seen) > 10_000:
                self.seen.clear()
            entry = self.seen[key] = [now - self.every_s, 0]
        entry[1] += 1
        if now - entry[0] >= self.every_s:
            log.warning("beacons refused", extra={"site": site[:64], "code": code, "reason": reason[:300],
                                                  "count": entry[1],
                                                  "fix": "see `chainlens status` for the fix"})
            entry[0], entry[1] = now, 0


REFUSALS = RefusalLog()


def answer(site_id: str, result: Intake) -> web.Response:
    if result.rows:
        metrics.count(metrics.accepted_counter(site_id), len(result.rows))
    for err in result.errors + result.dropped:  # the field, without props' own keys: a bounded label set
        metrics.REJECTED.labels(err["field"].split(".", 1)[0]).inc()
        REFUSALS.note(site_id, err["code"], err["error"])
    if not result.errors and not result.dropped:
        return web.Response(body=_all_accepted(len(result.rows)), status=202, headers=_JSON)
    body: dict[str, Any] = {"accepted": len(result.rows), "rejected": len(result.errors), "errors": result.errors}
    if result.dropped:
        body["dropped"] = result.dropped
    return _json(body, status=202)


_JSON = {"Content-Type": "application/json"}


@functools.lru_cache(maxsize=1024)
def _all_accepted(count: int) -> bytes:
    """The usual answer's body, made once per count."""
    return orjson.dumps({"accepted": count, "rejected": 0, "errors": []})


def _site_of(body: bytes) -> Any:
    """The site a refused request named, if it can be read, for its events_rejected row."""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    return parsed.get("site", "") if isinstance(parsed, dict) else ""


async def _keep_rejected_request(
    spool: SpoolWriter, exc: BeaconError, *, received_ms: int, site: Any, source: str, body: bytes
) -> None:
    row = rejected_row(received_ms=received_ms, site_id=str(site)[:64] if isinstance(site, str) else "",
                       source=source, reason=f"{exc.status}: {exc.message}", payload=body[:65536], code=exc.code,
                       field=exc.field, detail=exc.detail)
    try:
        await spool.append(received_ms, (), [row])
    except SpoolFull:
        pass  # the request is answered with its own 4xx; a full spool cannot keep more


def error_response(status: int, message: str, *, code: str, **headers: str) -> web.Response:
    return _json({"error": message, "code": code}, status=status, headers=headers)


def overloaded(message: str) -> web.Response:
    return error_response(503, f"{message}; retry later", code="overloaded", **{"Retry-After": "5"})


def _json(obj: Any, *, status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, headers=headers, content_type="application/json")
