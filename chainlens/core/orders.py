"""The rules of events about an order after its purchase (docs/metrics.md, "After the purchase"):
shipped, delivered and returned reports, tracking views and satisfaction answers."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from chainlens.core.fields import number_from
from chainlens.core.refusals import EventError
from chainlens.core.settings import TRACKING_VIEWED, Site

FEEDBACK = "feedback"  # a satisfaction answer: chainlens('feedback', score, {asked_at})
LATE_AGE_MS = 400 * 24 * 3600 * 1000  # the back office's reports about an order: returns, late surveys


def after_purchase_props(props: dict[str, str], *, site: Site, step: str, order_id: str, feedback: bool) -> None:
    """Check and normalize what a post-purchase step or a satisfaction answer carries
    (docs/metrics.md, "After the purchase"): an order id for the steps, a score from 0 to 10
    for answers, `promised_by` as an instant in UTC."""
    if feedback:
        score = number_from(props.get("score"))
        if score is None or not 0 <= score <= 10 or score != int(score):
            raise EventError("props.score", "must be a whole number from 0 to 10")
        props["score"] = str(int(score))
        return
    if not order_id and step != TRACKING_VIEWED:  # a tracking page may not know it: linked by visitor
        raise EventError("order_id", f"missing: a {step!r} event is linked to its purchase by order id",
                         code="missing")
    if "promised_by" in props:
        promised = instant(props["promised_by"], site.timezone)
        if promised is None:
            raise EventError("props.promised_by", "not a date, a date and time (ISO 8601) or epoch milliseconds")
        props["promised_by"] = promised


def instant(text: str, timezone: str) -> str | None:
    """A promise as UTC ISO text: a date means the end of that day in the site's time zone, a
    time without an offset is the site's local time, a number is epoch milliseconds."""
    number = number_from(text)
    try:
        if number is not None:
            moment = dt.datetime.fromtimestamp(number / 1000, dt.UTC)
        elif len(text.strip()) == 10:
            day = dt.date.fromisoformat(text.strip())
            moment = dt.datetime.combine(day, dt.time(23, 59, 59, 999000), zoneinfo.ZoneInfo(timezone))
        else:
            moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=zoneinfo.ZoneInfo(timezone))
    except (ValueError, OverflowError, OSError):
        return None
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
