"""Refusals: what the collector could not take, with a stable code (docs/snippet.md, "Refusals").

A refusal carries a code from `CODES` (what kind of mistake, stable across releases),
the field it is about, and a detail (the value that was wrong, where that helps the
fix: the origin, the site id). The answer's body, the `events_rejected` row, the
log line and the live panel's fix all key on the code; the reason text is for people
and may be reworded.
"""

from __future__ import annotations

from typing import Any

import msgspec

# code -> what it means. A request refused whole (4xx) or one event refused (202 with errors),
# or one field left out of an event that was stored (202 with `dropped`).
CODES: dict[str, str] = {
    "unsupported_type": "the request's Content-Type is not text/plain or application/json",
    "unsupported_encoding": "the request's Content-Encoding is not gzip or none",
    "too_large": "the body, its decompressed size or its event count is over the limit",
    "timeout": "the body did not arrive in time",
    "bad_body": "the body is not valid gzip, text or JSON",
    "bad_envelope": "the body is JSON but not {site, events, sent_at}",
    "unknown_site": "the site id is not configured",
    "origin_refused": "the page's origin is not in the site's origins",
    "unauthorized": "/s2s without the site's secret",
    "bad_event": "an event is not a JSON object",
    "missing": "an event lacks a field its type needs",
    "invalid": "an event's field cannot be read",
    "unknown_step": "a step the site's chain does not have",
    "too_old": "an event older than the age limit",
    "in_future": "an event from the future",
    "dropped": "a field that could not be read was left out; the event was stored",
}


class BeaconError(Exception):
    """The whole request cannot be read; `status` is the 4xx it is answered with."""

    def __init__(self, status: int, message: str, *, code: str, field: str = "", detail: str = "") -> None:
        assert code in CODES, code
        super().__init__(message)
        self.status, self.message, self.code, self.field, self.detail = status, message, code, field, detail[:200]

    def body(self) -> dict[str, Any]:
        return {"error": self.message, "code": self.code, **({"field": self.field} if self.field else {})}


class EventError(Exception):
    """One event is invalid; it is kept in `events_rejected` with this reason and code."""

    def __init__(self, field: str, reason: str, *, code: str = "invalid") -> None:
        assert code in CODES, code
        super().__init__(f"{field}: {reason}")
        self.field, self.reason, self.code = field, reason, code


class RejectedRow(msgspec.Struct, array_like=True):
    """One `events_rejected` row, its fields in the table's column order."""

    received_at: float
    site_id: str
    source: str
    reason: str
    payload: str
    code: str
    field: str
    detail: str


REJECTED_COLUMNS: tuple[str, ...] = RejectedRow.__struct_fields__


def rejected_row(*, received_ms: int, site_id: str, source: str, reason: str, payload: bytes | str,
                 code: str, field: str = "", detail: str = "") -> RejectedRow:
    """An `events_rejected` row: the payload as received, at most 64 KiB."""
    text = payload.decode("utf-8", "backslashreplace") if isinstance(payload, bytes) else payload
    return RejectedRow(received_ms / 1000, site_id, source, reason, text[:65536], code, field[:128], detail[:200])
