"""The settings model: one frozen object per run, what every part is handed (README,
"Configuration"). chainlens/core/loading.py builds it from a file and the environment;
chainlens/core/event_map.py holds the default ecommerce event map it applies.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from chainlens.core.event_map import default_steps

DEMO_CHAIN = (
    "discover", "search", "select", "cart",
    "checkout.info", "checkout.shipping", "checkout.payment", "checkout.review",
    "purchase",
)


def is_embedded(dsn: str) -> bool:
    return dsn.startswith("chdb:")


def embedded_path(dsn: str) -> Path:
    """`chdb://./data/x` and `chdb:///abs/x` both name a directory."""
    rest = dsn.split("://", 1)[1] if "://" in dsn else dsn.split(":", 1)[1]
    return Path(rest.split("?", 1)[0]).resolve()


LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ConfigError(Exception):
    """A configuration problem; the CLI prints it and exits 2."""

    def __init__(self, source: str, key: str, reason: str) -> None:
        super().__init__(f"{source}: {key}: {reason}")
        self.source, self.key, self.reason = source, key, reason


@dataclass(frozen=True)
class StoreSettings:
    dsn: str = "chdb://./data/chainlens"


@dataclass(frozen=True)
class CollectorSettings:
    host: str = "127.0.0.1"
    port: int = 8787
    public_url: str = ""  # default: http://host:port
    workers: int = 0  # 0: one accept process per core
    spool_dir: str = "./data/spool"
    spool_max_bytes: int = 1 << 30
    rate_limit_rps: float = 20.0
    max_body_bytes: int = 65536
    max_decompressed_bytes: int = 1 << 20
    max_events: int = 500
    idle_timeout_s: float = 15.0  # a connection with no complete request for this long is closed (slow clients)
    trust_forwarded: bool = False  # take the client address from X-Forwarded-For (behind a proxy)
    dashboard_token: str = ""  # empty: the dashboard answers loopback clients only
    flush_interval_s: float = 1.0  # loader: at most one insert per interval; everything spooled meanwhile goes in it

    def url(self) -> str:
        return self.public_url.rstrip("/") or f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class RollupSettings:
    session_timeout_s: int = 1800
    every_s: int = 300
    enabled: bool = True  # false on all but one node when several collectors share a store


@dataclass(frozen=True)
class AlertSettings:
    webhook: str = ""
    window_days: int = 1  # before window_hours: accepted in old files, no longer used
    window_hours: tuple[int, ...] = (3, 6, 24)  # rolling windows of sessions closed in the last hours
    baseline_days: int = 14  # the trailing baseline, weighted by hour of day in the site's time zone
    min_sample: int = 30  # sessions reaching the step in the window, and in the baseline
    z_threshold: float = 3.75
    min_rise: float = 0.05  # absolute rise of the abandonment rate worth a warning
    min_drop: float = 0.5  # a step that gets this share fewer sessions than expected or worse
    live: bool = True  # judge open sessions too, every live_every_s (docs/metrics.md, "Live early warning")
    live_every_s: int = 60


@dataclass(frozen=True)
class FastTrackSettings:
    """Fast Track In Stock (docs/metrics.md): which step is the product view, which props say
    "in stock" (true) and "ships within N days", and N."""

    step: str = "select"
    in_stock: str = "in_stock"
    ship_days: str = "ship_days"
    within_days: float = 2


@dataclass(frozen=True)
class BehaviorSettings:
    """The built-in behavior segments' thresholds (docs/metrics.md, "Behavior segments")."""

    product_step: str = ""  # "": the Fast Track step ([sites.fast_track] step, "select")
    search_step: str = ""  # "": the chain step before the product step ("search")
    decisive_minutes: float = 3  # reached the cart step within this long of the session's first event,
    decisive_max_views: int = 2  # after at most this many product views and no search
    researcher_views: int = 5  # this many product views or more,
    researcher_searches: int = 2  # or this many searches or more
    returning_days: int = 30  # how far back a visitor's earlier cart without a purchase is looked for
    # Site search (docs/metrics.md, "Site search"): the search step's URL parameters that hold the
    # term, after a GA4 `search_term` prop; the term is kept for the search step only. []: none.
    search_params: tuple[str, ...] = ("q", "s", "search", "query", "keyword")


@dataclass(frozen=True)
class LandingSettings:
    """The first seconds on a landing page (docs/metrics.md, "Landing engagement")."""

    engaged_s: float = 7  # a first interaction within this long is engaged
    clicks: int = 3  # reached goal_step within this many clicks
    goal_step: str = ""  # "": the product step


TRIGGERS = ("exit_intent", "idle", "return_after_hide")


@dataclass(frozen=True)
class InterveneSettings:
    """Acting at the moment of abandoning, measured against a holdout (docs/interventions.md)."""

    steps: tuple[str, ...] = ()  # none: the risk script does nothing
    holdout: float = 0.2  # share of at-risk sessions in which nothing is shown
    triggers: tuple[str, ...] = TRIGGERS
    idle_s: str | float = "auto"  # "auto": the step's median time before abandoning, from the rollups
    min_sample: int = 30  # at-risk sessions in each arm below which the lift is `insufficient`


@dataclass(frozen=True)
class FormsSettings:
    """The forms add-on (docs/snippet.md, "The forms add-on"): the steps whose forms it watches."""

    steps: tuple[str, ...] = ()  # none: its tag is not printed, and it watches nothing


@dataclass(frozen=True)
class Segment:
    """A site's own behavior segment: sessions for which `where` (ClickHouse, over
    chain_sessions' columns) is true, checked before the built-ins, in order."""

    name: str
    where: str


BUILTIN_SEGMENTS = ("decisive", "researcher", "returning_to_finish", "browser")
# After the purchase (docs/metrics.md, "After the purchase"): what a shop's back office reports by
# order id; `tracking_viewed` (the shopper opened the order's tracking) is always one of them.
AFTER_PURCHASE = ("shipped", "delivered", "returned")
TRACKING_VIEWED = "tracking_viewed"



@dataclass(frozen=True)
class Site:
    id: str
    origins: tuple[str, ...] = ()
    secret: str = ""
    timezone: str = "UTC"
    chain: tuple[str, ...] = DEMO_CHAIN
    checkout_from: str = "cart"
    step_urls: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    events: Mapping[str, str] = field(default_factory=dict)  # ecommerce event name → chain step, over the default
    alerts: AlertSettings = AlertSettings()
    fast_track: FastTrackSettings = FastTrackSettings()
    obstacle_min_sample: int = 30  # sessions on each side below which an obstacle's figures are `insufficient`
    segments: tuple[Segment, ...] = ()  # [[sites.segments]], before the built-in ones
    after_purchase: tuple[str, ...] = AFTER_PURCHASE  # what the back office reports after the purchase
    behavior: BehaviorSettings = BehaviorSettings()
    landing: LandingSettings = LandingSettings()
    intervene: InterveneSettings = InterveneSettings()
    forms: FormsSettings = FormsSettings()
    cookieless: bool = False  # the snippet stores nothing in the browser
    require_consent: bool = False  # the snippet waits for chainlens('consent', true)
    session_minutes: int = 30
    scrub_query: bool = True  # drop URL query strings and fragments before storing
    # Retention (docs/privacy.md): raw and rejected events, and the row-level tables (chain_sessions,
    # chain_orders), are removed once older than this many days; 0 keeps them. Daily tables are kept.
    keep_raw_days: int = 0
    keep_sessions_days: int = 0

    @functools.cached_property
    def chain_steps(self) -> frozenset[str]:
        return frozenset(self.chain)

    @functools.cached_property
    def url_rules(self) -> tuple[tuple[re.Pattern[str], str], ...]:
        """`step_urls` compiled: a path glob's `*` is any run of characters, the glob matches the whole path."""
        return tuple((re.compile(".*".join(re.escape(part) for part in glob.split("*"))), step)
                     for step, globs in self.step_urls.items() for glob in globs)

    @functools.cached_property
    def _steps_by_url(self) -> dict[str, str]:
        return {}

    def step_for_url(self, url: str) -> str:
        """The chain step a page at `url` is, by the site's URL rules ("" when none matches)."""
        known = self._steps_by_url.get(url)
        if known is not None:
            return known
        try:
            path = urlsplit(url).path or "/"
        except ValueError:  # not a URL (an unbalanced "[" in the host, say): no rule applies
            path = ""
        step = next((step for rx, step in self.url_rules if rx.fullmatch(path)), "")
        if len(self._steps_by_url) > 10_000:  # a bounded memo: stores have many URLs, few rules
            self._steps_by_url.clear()
        self._steps_by_url[url] = step
        return step

    @functools.cached_property
    def event_steps(self) -> dict[str, str]:
        """Ecommerce event name → chain step: the GA4 and Shopify defaults that fit this chain, then `events`."""
        out = default_steps(self.chain, checkout_from=self.checkout_from, product_step=self.product_step)
        out.update({name: name for name in self.after_steps})  # a track event named `shipped` is that step
        out.update(self.events)
        return out

    @functools.cached_property
    def after_steps(self) -> frozenset[str]:
        """The steps an order may take after the purchase, keyed by order id."""
        return frozenset((*self.after_purchase, TRACKING_VIEWED))

    @property
    def segment_names(self) -> list[str]:
        """The behavior segments in the order they are checked: the site's own, then the built-ins."""
        return [s.name for s in self.segments] + list(BUILTIN_SEGMENTS)

    @property
    def product_step(self) -> str:
        return self.behavior.product_step or self.fast_track.step

    @functools.cached_property
    def search_step(self) -> str:
        if self.behavior.search_step:
            return self.behavior.search_step
        at = self.chain.index(self.product_step) if self.product_step in self.chain else 0
        return self.chain[at - 1] if at > 0 else ""

    @property
    def goal_step(self) -> str:
        return self.landing.goal_step or self.product_step

    def kept_from(self, today: dt.date, days: int) -> dt.date | None:
        """The first day a retention of `days` keeps, from the site's `today`; None: all of them."""
        return today - dt.timedelta(days=days) if days > 0 else None

    @property
    def checkout_steps(self) -> tuple[str, ...]:
        """`checkout_from` up to, not including, the last chain step (docs/metrics.md, "Abandonment")."""
        start = self.chain.index(self.checkout_from)
        return self.chain[start:-1]


@dataclass(frozen=True)
class Settings:
    store: StoreSettings = StoreSettings()
    collector: CollectorSettings = CollectorSettings()
    rollup: RollupSettings = RollupSettings()
    sites: tuple[Site, ...] = ()
    source: str = "<defaults>"

    def site(self, site_id: str) -> Site | None:
        return self._by_id.get(site_id)

    @functools.cached_property
    def _by_id(self) -> dict[str, Site]:
        """Every beacon looks its site up: one dict, however many sites a collector serves."""
        return {s.id: s for s in self.sites}

