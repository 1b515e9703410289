"""The forms add-on's reports (docs/snippet.md, "The forms add-on"), checked before they are
stored: names of forms and fields (never a value), counts and times within bounds."""

from __future__ import annotations

from chainlens.core.fields import is_number
from chainlens.core.refusals import EventError

FORM_EVENTS = ("form_field", "form_report")
OUTCOMES = ("submitted", "left")
MAX_NAME = 100
DAY_MS = 86_400_000


def _count(props: dict[str, str], key: str, top: float) -> None:
    text = props.get(key, "0")
    try:
        value = float(text)
    except ValueError:
        raise EventError(f"props.{key}", "not a number") from None
    if not is_number(value) or not 0 <= value <= top or (top < DAY_MS and value != int(value)):
        raise EventError(f"props.{key}", f"must be a whole number from 0 to {top:g}" if top < DAY_MS
                         else "must be milliseconds from 0 to a day")


def check_form(name: str, props: dict[str, str]) -> None:
    """EventError unless a forms report names its form (and field) and counts within bounds."""
    keys = ("form", "field") if name == "form_field" else ("form",)
    for key in keys:
        if not 0 < len(props.get(key, "")) <= MAX_NAME:
            raise EventError(f"props.{key}", f"must be a name of 1 to {MAX_NAME} characters")
    if name == "form_field":
        _count(props, "ms", DAY_MS)
        for key in ("corrections", "errors"):
            _count(props, key, 10_000)
        _count(props, "autofilled", 1)
    else:
        if props.get("outcome") not in OUTCOMES:
            raise EventError("props.outcome", f"must be one of {', '.join(OUTCOMES)}")
        _count(props, "attempts", 10_000)
        if len(props.get("last_field", "")) > MAX_NAME:
            raise EventError("props.last_field", f"must be at most {MAX_NAME} characters")
