"""`chainlens import FILE --site SITE`: JSON lines of wire events, the collector's
validation without its age limit; rejected lines are reported by line number
and kept in `events_rejected`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from typing import Any

import orjson
from clickhouse_connect.driver.client import Client as Store

from chainlens.core.agents import client_from_ua
from chainlens.core.fields import Client
from chainlens.core.refusals import RejectedRow, rejected_row
from chainlens.core.rows import build_rows
from chainlens.core.settings import Site
from chainlens.core.spoolfile import rows_body
from ingestion import store

CHUNK_LINES = 50_000
UNKNOWN = Client(device="unknown")  # a line without `ua`: the shop's systems, not a browser we saw


def import_lines(client: Store, lines: Iterable[bytes], *, site: Site, first_line: int = 1) -> dict[str, Any]:
    """Validate and insert; returns {"accepted", "rejected", "errors": [{"line", "error"}]}."""
    received_ms = int(time.time() * 1000)
    events: list[Any] = []
    numbers: list[int] = []
    bad_json: list[RejectedRow] = []
    errors: list[dict[str, Any]] = []
    refused = 0
    digest = hashlib.sha256(site.id.encode())
    for number, line in enumerate(lines, start=first_line):
        if not line.strip():
            continue
        digest.update(line)
        try:
            events.append(orjson.loads(line))
            numbers.append(number)
        except orjson.JSONDecodeError as exc:
            reason = f"not valid JSON: {exc.msg}"
            errors.append({"line": number, "error": reason, "code": "bad_body"})
            bad_json.append(rejected_row(received_ms=received_ms, site_id=site.id, source="import",
                                         reason=f"line {number}: {reason}", payload=line, code="bad_body"))
    # A line may name its shopper's user agent (`ua`, as the shop's own export has it): the device,
    # browser and bot flag come from it as on /e. Without one the device is `unknown`.
    by_agent: dict[str, list[int]] = {}
    for index, event in enumerate(events):
        agent = event.get("ua") if isinstance(event, dict) else None
        by_agent.setdefault(agent if isinstance(agent, str) else "", []).append(index)
    rows, rejected = [], []
    for agent, indexes in by_agent.items():
        sender = client_from_ua(agent) if agent else UNKNOWN
        result = build_rows([events[i] for i in indexes], site=site, client=sender, received_ms=received_ms,
                            sent_at=None, source="import", age_limit=False)
        rows += result.rows
        for kept in (result.errors, result.dropped):
            errors.extend({"line": numbers[indexes[e["index"]]], "error": e["error"], "code": e["code"]}
                          for e in kept)
        for row, index in zip(result.rejected, result.rejected_index, strict=True):  # name the line in the reason
            row.reason = f"line {numbers[indexes[index]]}: {row.reason}"
        rejected += result.rejected
        refused += len(result.errors)
    errors.sort(key=lambda e: e["line"])
    # The same lines imported twice carry the same token: the second insert is a no-op.
    token = "import-" + digest.hexdigest()[:32]
    store.insert_events(client, rows_body(rows), token=token)
    store.insert_rejected(client, rows_body(bad_json + rejected), token=token + "-r")
    return {"accepted": len(rows), "rejected": len(bad_json) + refused, "errors": errors}

