"""The live view of a site: is data arriving, what is still waiting to become tables, what is
refused and how to fix it (`chainlens status`, the dashboard's live panel; docs/metrics.md, "Live").
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from clickhouse_connect.driver.client import Client

from chainlens.core import clock
from chainlens.core.settings import Settings, Site
from ingestion import live_alerts

ARRIVING = """
SELECT
    countIf(received_at >= {now:DateTime64(3)} - INTERVAL 5 MINUTE AND NOT is_bot) AS events_5m,
    countIf(received_at >= {now:DateTime64(3)} - INTERVAL 30 MINUTE AND NOT is_bot) AS events_30m,
    countIf(received_at >= {now:DateTime64(3)} - INTERVAL 30 MINUTE AND is_bot) AS bot_events_30m,
    max(received_at) AS last_event_at
FROM events
WHERE site_id = {site:String} AND source != 'import'  -- imported history is not arriving now
"""

# A session is open while its last event is younger than the session timeout; it becomes
# part of the tables at the first rollup pass after it closes.
OPEN = """
SELECT count() AS sessions, min(last) AS first_last, max(last) AS last_last
FROM (
    SELECT session_id, max(ts) AS last
    FROM events
    WHERE site_id = {site:String} AND NOT is_bot AND ts >= {now:DateTime64(3)} - INTERVAL {timeout:UInt32} SECOND
    GROUP BY session_id
)
"""

REFUSED = """
SELECT
    code, field, detail,
    any(replaceRegexpAll(reason, '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '…')) AS reason,
    count() AS n,
    max(received_at) AS last_at
FROM events_rejected
WHERE site_id = {site:String} AND received_at >= {now:DateTime64(3)} - INTERVAL 30 MINUTE
GROUP BY code, field, detail
ORDER BY n DESC
LIMIT 20
"""

# Refusals in words an operator can act on, by code (chainlens/core/refusals.py). Each text may
# name the refusal's {field} and {detail}, the {site} and the settings file ({source}).
FIXES: dict[str, str] = {
    "origin_refused": "origin {detail} is not in sites.origins of site {site}: add it to {source}, "
                      "then run `chainlens reload`",
    "unknown_site": "the tag names site {detail}, which {source} does not configure: fix the tag or add the site",
    "unauthorized": "server-side senders must send `Authorization: Bearer <the site's secret>` to /s2s",
    "unsupported_type": "a custom sender posts another format: send JSON as text/plain or application/json",
    "unsupported_encoding": "a custom sender compresses another way: send gzip or plain",
    "too_large": "batches are too large: the snippet splits them by itself; custom senders must send smaller ones",
    "timeout": "clients send bodies too slowly (a slow network or a client that stalls): nothing to change "
               "unless it persists",
    "bad_event": "something sends events that are not JSON objects: check custom integrations",
    "bad_body": "something posts bodies that are not the snippet's JSON: check custom integrations and proxies",
    "bad_envelope": "something posts JSON that is not a beacon ({field}): see docs/snippet.md for the format",
    "missing": "the tag sends events without `{field}`: see docs/snippet.md for the fields and their types",
    "invalid": "the tag sends a bad `{field}`: see docs/snippet.md for the fields and their types",
    "unknown_step": "the tag names a step that is not in the chain of site {site}: fix the tag or the chain",
    "too_old": "events arrive long after they happened: a page queue replayed late, or a wrong client clock",
    "in_future": "events are dated in the future: a client clock far ahead, or a custom sender's ts",
    "dropped": "the tag sends a `{field}` that cannot be read: it is left out of the stored events",
}


def fix_for(code: str, *, field: str = "", detail: str = "", site: str = "", source: str) -> str:
    text = FIXES.get(code, "")
    return text.format(field=field, detail=detail, site=site, source=source)


def live_state(client: Client, settings: Settings, site: Site, *, now: dt.datetime | None = None) -> dict[str, Any]:
    now = now or clock.now()
    params = {"site": site.id, "timeout": settings.rollup.session_timeout_s,
              "now": now.astimezone(dt.UTC).replace(tzinfo=None)}
    arriving = dict(zip(("events_5m", "events_30m", "bot_events_30m", "last_event_at"),
                        client.query(ARRIVING, parameters=params).result_rows[0], strict=True))
    sessions, first_last, last_last = client.query(OPEN, parameters=params).result_rows[0]
    timeout = dt.timedelta(seconds=settings.rollup.session_timeout_s)
    refused = [
        {"code": code, "field": field, "detail": detail, "reason": reason, "count": n, "last_at": _iso(last_at),
         "fix": fix_for(code, field=field, detail=detail, site=site.id, source=settings.source)}
        for code, field, detail, reason, n, last_at in client.query(REFUSED, parameters=params).result_rows
    ]
    last = arriving["last_event_at"]
    return {
        "site": site.id,
        "events_5m": int(arriving["events_5m"]),
        "events_30m": int(arriving["events_30m"]),
        "bot_events_30m": int(arriving["bot_events_30m"]),
        "last_event_at": _iso(last) if last and last.year > 1970 else None,
        "open_sessions": int(sessions),
        "first_closes_at": _iso(first_last + timeout) if sessions else None,
        "last_closes_at": _iso(last_last + timeout) if sessions else None,
        "rollup_every_s": settings.rollup.every_s,
        "refused_30m": refused,
        "checkout": live_alerts.panel(client, site, now=now, timeout_s=settings.rollup.session_timeout_s)
        if site.alerts.live else None,
    }


def live_text(state: dict[str, Any]) -> str:
    """The live state as `chainlens status` prints it."""
    lines = [f"site {state['site']}:"]
    last = state["last_event_at"] or "never"
    lines.append(f"  events received: {state['events_5m']:,} in the last 5 min, {state['events_30m']:,} in 30 min; "
                 f"last at {last}")
    if state["bot_events_30m"]:
        lines.append(f"  from bots and headless browsers: {state['bot_events_30m']:,} in 30 min "
                     "(stored, left out of the tables)")
    if state["open_sessions"]:
        lines.append(f"  sessions open: {state['open_sessions']:,}; they close into the tables from "
                     f"{state['first_closes_at']} to {state['last_closes_at']} (rollup every "
                     f"{state['rollup_every_s']} s)")
    else:
        lines.append("  sessions open: none")
    if not state["refused_30m"]:
        lines.append("  refused in 30 min: nothing")
    for r in state["refused_30m"]:
        # A dropped field is no refusal: its event was stored, without that field.
        what = "LEFT OUT" if r["code"] == "dropped" else "REFUSED"
        lines.append(f"  {what} {r['count']:,}× (last {r['last_at']}): {r['reason']}")
        if r["fix"]:
            lines.append(f"    fix: {r['fix']}")
    checkout = state.get("checkout")
    if checkout:
        lines.append(f"  checkout, last {checkout['minutes']} min (moved on / entered, expected by now):")
        for s in checkout["steps"]:
            if s["entered"] is None:
                lines.append(f"    {s['step']}: no baseline yet")
            else:
                lines.append(f"    {s['step']}: {s['moved']} / {s['entered']}, {s['expected']} expected")
        for a in checkout["alerts"]:
            lines.append(f"  LIVE ALERT since {a['since']}: {a['message']}")
    return "\n".join(lines)


def _iso(value: dt.datetime) -> str:
    value = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
    return value.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
