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
from clickhouse_connect.driver.client import Client

from chainlens.core.fields import Client as Sender
from chainlens.core.refusals import RejectedRow, rejected_row
from chainlens.core.rows import build_rows
from chainlens.core.settings import Site
from chainlens.core.spoolfile import rows_body
from ingestion import store

CHUNK_LINES = 50_000


def import_lines(client: Client, lines: Iterable[bytes], *, site: Site, first_line: int = 1) -> dict[str, Any]:
    """Validate and insert; returns {"accepted", "rejected", "errors": [{"line", "error"}]}."""
    received_ms = int(time.time() * 1000)
    events: list[Any] = []
    numbers: list[int] = []
    bad_json: list[RejectedRow] = []
    errors: list[dict[str, Any]] = []
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
    # Imported events come from the store's own systems: no user agent, not bots.
    result = build_rows(events, site=site, client=Sender(device="desktop"), received_ms=received_ms, sent_at=None,
                        source="import", age_limit=False)
    for kept in (result.errors, result.dropped):
        errors.extend({"line": numbers[e["index"]], "error": e["error"], "code": e["code"]} for e in kept)
    errors.sort(key=lambda e: e["line"])
    for row, index in zip(result.rejected, result.rejected_index, strict=True):  # name the line in the reason
        row.reason = f"line {numbers[index]}: {row.reason}"
    # The same lines imported twice carry the same token: the second insert is a no-op.
    token = "import-" + digest.hexdigest()[:32]
    store.insert_events(client, rows_body(result.rows), token=token)
    store.insert_rejected(client, rows_body(bad_json + result.rejected), token=token + "-r")
    return {"accepted": len(result.rows), "rejected": len(bad_json) + len(result.errors), "errors": errors}

