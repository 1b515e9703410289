"""The rollup tables, declared once (docs/architecture.md, "Adding a table").

Each entry names a table, its phase (what its days are: the sessions' start days, the
orders' purchase days or the answers' days) and the docs section that defines it. Its
SQL is `ingestion/rollups/NAME.sql`; the parameters it takes are the ones that file
names (`{name:Type}`), each computed by one function in `PARAMETERS`. The rollup
runner, the staging copies, the schema check, the bench and the tests iterate
`TABLES`; adding a table is its SQL file, its migration, one entry here, its docs
section and its tests.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal

from chainlens.core.settings import TRACKING_VIEWED, Site

ALL = "all"  # segment columns' value in the total rows (GROUPING SETS)

# A day phase rebuilds its tables for the days a pass finds; "site" tables are rebuilt whole,
# after them, at every pass (customers and repeat purchases span every day of the site).
Phase = Literal["sessions", "orders", "answers", "site"]
PHASES: tuple[Phase, ...] = ("sessions", "orders", "answers")


@dataclass(frozen=True)
class Table:
    name: str
    phase: Phase  # which days a pass rebuilds it for, in this order within a phase
    section: str  # where it is defined: 'docs/FILE.md, "Heading"'
    # The groups it stores: each names the columns broken out; the table's other `dims` hold
    # 'all' in that group's rows. () for a table without totals (one row per session, order…).
    rows: tuple[tuple[str, ...], ...] = ()

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(d for group in self.rows for d in group))

    @property
    def source(self) -> str:
        return _source(self.name)

    @property
    def parameters(self) -> tuple[str, ...]:
        """The parameters its SQL names, in order of first use."""
        return tuple(dict.fromkeys(re.findall(r"\{(\w+):", self.source)))

    def sql(self, site: Site) -> str:
        return self.source.replace("/*SEGMENTS*/", segment_conditions(site)).replace("/*ENTRIES*/", step_entries(site))


def every(*dims: str) -> tuple[tuple[str, ...], ...]:
    """Every combination of `dims`, from all of them broken out to the site total."""
    return tuple(c for n in range(len(dims), -1, -1) for c in itertools.combinations(dims, n))


CUTS = every("device", "visitor", "segment")  # chainlens_cuts: the eight groups of a session

TABLES: tuple[Table, ...] = (
    Table("chain_sessions", "sessions", 'docs/metrics.md, "Sessions"'),
    Table("chain_daily", "sessions", 'docs/metrics.md, "Sessions"', CUTS),
    Table("checkout_abandonment_daily", "sessions", 'docs/metrics.md, "Abandonment"', CUTS),
    Table("step_timing_daily", "sessions", 'docs/metrics.md, "Step timing"', CUTS),
    Table("obstacle_impact_daily", "sessions", 'docs/metrics.md, "Obstacle impact"', every("segment")),
    Table("fast_track_daily", "sessions", 'docs/metrics.md, "Fast Track In Stock"'),
    Table("checkout_hourly", "sessions", 'docs/metrics.md, "Early warning"', every("device")),
    Table("step_moves_hourly", "sessions", 'docs/metrics.md, "Live early warning"', every("device")),
    Table("landing_engagement_daily", "sessions", 'docs/metrics.md, "Landing engagement"', (
        ("landing_path", "source", "device", "segment"), ("landing_path", "source"), ("landing_path", "device"),
        ("landing_path", "segment"), ("landing_path",), ("source",), ("device",), ("segment",), ())),
    Table("campaign_daily", "sessions", 'docs/metrics.md, "Campaigns"', (
        ("source", "medium", "campaign", "device"), ("source", "medium", "campaign"), ("source", "device"),
        ("source",), ("device",), ())),
    Table("breakdown_daily", "sessions", 'docs/metrics.md, "Breakdowns"', every("device", "segment")),
    Table("product_daily", "sessions", 'docs/metrics.md, "Products"', every("device", "segment")),
    Table("search_daily", "sessions", 'docs/metrics.md, "Site search"', every("device", "segment")),
    Table("form_fields_daily", "sessions", 'docs/metrics.md, "Form fields"', every("device")),
    Table("form_daily", "sessions", 'docs/metrics.md, "Form fields"', every("device")),
    Table("intervention_daily", "sessions", 'docs/interventions.md, "`intervention_daily`"',
          every("trigger", "device")),
    Table("chain_orders", "orders", 'docs/metrics.md, "After the purchase"'),
    Table("fulfillment_daily", "orders", 'docs/metrics.md, "After the purchase"', every("device", "segment")),
    Table("satisfaction_daily", "answers", 'docs/metrics.md, "Satisfaction"', every("asked_at", "device", "segment")),
    Table("customers", "site", 'docs/metrics.md, "Customers and repeat purchases"'),
    Table("repeat_purchase_daily", "site", 'docs/metrics.md, "Customers and repeat purchases"', every("device")),
)
NAMES = tuple(t.name for t in TABLES)


def in_phase(phase: Phase) -> tuple[Table, ...]:
    return tuple(t for t in TABLES if t.phase == phase)


@functools.cache
def _source(name: str) -> str:
    return (resources.files("ingestion") / "rollups" / f"{name}.sql").read_text()


def segment_conditions(site: Site) -> str:
    """The site's own segments as multiIf arguments, in order (checked by the settings, and
    by the store in rollup.check_segments)."""
    return "".join(f"({segment.where}), '{segment.name}',\n        " for segment in site.segments)


def step_entries(site: Site) -> str:
    """Each chain step's first time in a session as (step, epoch ms, 0 if never), one minIf per
    step of the SQL's `chain` (the site's chain, a parameter): cheaper than collecting the
    session's visits and sorting them (BENCHMARKS.md)."""
    return ", ".join(f"(chain[{i}], minIf(toUnixTimestamp64Milli(ts), step = chain[{i}]))"
                     for i in range(1, len(site.chain) + 1))


@dataclass(frozen=True)
class Pass:
    """What one rebuild covers: a site, a run of consecutive days, when sessions count as closed."""

    site: Site
    days: list[dt.date]
    lo: dt.datetime  # the scan's bounds: the first day's midnight, and a day past the last day
    hi: dt.datetime
    closed_before: dt.datetime


def _after_step(step: str) -> Callable[[Pass], str]:
    # A post-purchase step the fulfillment figures read, when the site reports it (else nothing matches).
    return lambda p: step if step in p.site.after_purchase else "\x00"


# Every parameter a rollup SQL file may name, computed from the pass. docs/metrics.md defines each use.
PARAMETERS: dict[str, Callable[[Pass], Any]] = {
    "site": lambda p: p.site.id,
    "tz": lambda p: p.site.timezone,
    "chain": lambda p: list(p.site.chain),
    "checkout": lambda p: list(p.site.checkout_steps),
    "days": lambda p: p.days,
    "first_day": lambda p: p.days[0],
    "last_day": lambda p: p.days[-1],
    "lo": lambda p: p.lo,
    "hi": lambda p: p.hi,
    "closed_before": lambda p: p.closed_before,
    "all": lambda p: ALL,
    "ft_step": lambda p: p.site.fast_track.step,
    "ft_in_stock": lambda p: p.site.fast_track.in_stock,
    "ft_ship_days": lambda p: p.site.fast_track.ship_days,
    "ft_days": lambda p: float(p.site.fast_track.within_days),
    "min_sample": lambda p: p.site.obstacle_min_sample,
    "cart": lambda p: p.site.checkout_from,
    "last_checkout": lambda p: p.site.checkout_steps[-1],
    "cart_index": lambda p: p.site.chain.index(p.site.checkout_from) + 1,
    "product": lambda p: p.site.product_step,
    "search": lambda p: p.site.search_step,
    "decisive_ms": lambda p: p.site.behavior.decisive_minutes * 60_000.0,
    "decisive_views": lambda p: p.site.behavior.decisive_max_views,
    "researcher_views": lambda p: p.site.behavior.researcher_views,
    "researcher_searches": lambda p: p.site.behavior.researcher_searches,
    "returning_from": lambda p: p.days[0] - dt.timedelta(days=p.site.behavior.returning_days),
    "last": lambda p: p.site.chain[-1],
    "shipped": _after_step("shipped"),
    "delivered": _after_step("delivered"),
    "returned": _after_step("returned"),
    "tracking": lambda p: TRACKING_VIEWED,
    "act_min_sample": lambda p: p.site.intervene.min_sample,
    "goal": lambda p: p.site.goal_step,
    "goal_clicks": lambda p: p.site.landing.clicks,
    "engaged_ms": lambda p: p.site.landing.engaged_s * 1000.0,
}


def parameters(table: Table, work: Pass) -> dict[str, Any]:
    """The parameters `table`'s SQL names, and only those."""
    return {name: PARAMETERS[name](work) for name in table.parameters}


def rows_text(table: Table) -> str:
    """The groups a table stores, as its docs section says them (tests/test_docs.py checks it)."""
    groups = ["the site total" if not g else " × ".join(f"`{d}`" for d in g) for g in table.rows]
    return f"`{table.name}` rows, each with `all` in the other columns: {'; '.join(groups)}."
