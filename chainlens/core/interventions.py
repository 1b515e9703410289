"""The risk script's records (docs/interventions.md): the moment of risk in both arms, and what the
shop's offer became."""

from __future__ import annotations

from chainlens.core.refusals import EventError
from chainlens.core.settings import TRIGGERS

INTERVENTION_PROPS: dict[str, dict[str, tuple[str, ...]]] = {
    "intervention": {"trigger": TRIGGERS, "arm": ("treatment", "holdout")},
    "intervention_outcome": {"outcome": ("accepted", "dismissed")},
}


def check_intervention(name: str, props: dict[str, str]) -> None:
    """EventError unless an intervention record names one of its allowed values."""
    for key, allowed in INTERVENTION_PROPS[name].items():
        if props.get(key) not in allowed:
            raise EventError(f"props.{key}", f"must be one of {', '.join(allowed)}")
