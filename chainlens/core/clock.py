"""The process's clock: what every live evaluation, the live panel and `status` take as now.

`CHAINLENS_CLOCK` replaces it for a run: `2026-01-20T16:30:00Z` starts the clock there when
the process starts, and `2026-01-20T16:30:00Z*60` also runs it sixty times as fast (tests, the
bench and the demo; docs/metrics.md, "Live early warning"). A clock started in the past never runs
past the system clock: once it has caught up, it is the system clock. Unset, it is the system clock.
"""

from __future__ import annotations

import datetime as dt
import os
import time

_SPEC = os.environ.get("CHAINLENS_CLOCK", "")
_START = time.monotonic()


def _parse(spec: str) -> tuple[dt.datetime, float] | None:
    if not spec:
        return None
    at, _, speed = spec.partition("*")
    origin = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    return (origin if origin.tzinfo else origin.replace(tzinfo=dt.UTC)), float(speed or 1)


_INJECTED = _parse(_SPEC)


def now() -> dt.datetime:
    """Now, in UTC."""
    if _INJECTED is None:
        return dt.datetime.now(dt.UTC)
    origin, speed = _INJECTED
    at = origin + dt.timedelta(seconds=(time.monotonic() - _START) * speed)
    real = dt.datetime.now(dt.UTC)
    return at if origin > real or at < real else real
