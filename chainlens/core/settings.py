"""Settings: one frozen object, built in one place from a TOML file and the environment.

Resolution order for the file (README, "Configuration"): `-c/--config`, then
`$CHAINLENS_CONFIG`, then `./chainlens.toml`, then built-in defaults that serve a
`demo` site on an embedded store under `./data`. `$CHAINLENS_DSN` overrides
`store.dsn`. Nothing else in the project reads `os.environ` for settings (core/metrics.py
hands prometheus_client its multiprocess directory through the environment, as that library asks).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import tomllib
import types
import typing
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEMO_CHAIN = (
    "discover", "search", "select", "cart",
    "checkout.info", "checkout.shipping", "checkout.payment", "checkout.review",
    "purchase",
)


LIST_VIEWS = ("view_item_list", "collection_viewed")  # GA4's and Shopify's list pages
# The ecommerce events a store's tags already send, by the step they mean (docs/snippet.md):
# GA4's recommended events and Shopify's standard customer events. A site's chain keeps the
# ones whose step it has; `[sites.events]` adds or overrides.
DEFAULT_EVENTS: dict[str, tuple[str, ...]] = {
    # A category or collection page is browsing, not a search (it would feed the researcher segment).
    "discover": LIST_VIEWS,
    "search": ("view_search_results", "search", "search_submitted"),
    "select": ("view_item", "select_item", "product_viewed"),
    "cart": ("add_to_cart", "view_cart", "product_added_to_cart", "cart_viewed"),
    "checkout.info": ("begin_checkout", "checkout_started", "checkout_contact_info_submitted"),
    "checkout.shipping": ("add_shipping_info", "checkout_address_info_submitted"),
    "checkout.payment": ("add_payment_info", "checkout_shipping_info_submitted"),
    "checkout.review": ("payment_info_submitted",),
}


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
class Segment:
    """A site's own behavior segment: sessions for which `where` (ClickHouse, over
    chain_sessions' columns) is true, checked before the built-ins, in order."""

    name: str
    where: str


BUILTIN_SEGMENTS = ("decisive", "researcher", "returning_to_finish", "browser")
# After the purchase (docs/metrics.md, "After the purchase"): what a store's back office reports by
# order id; `tracking_viewed` (the shopper opened the order's tracking) is always one of them.
AFTER_PURCHASE = ("shipped", "delivered", "returned")
TRACKING_VIEWED = "tracking_viewed"

# chain_sessions' columns a segment's `where` may use (docs/metrics.md, "Sessions"); a test
# checks this list against the table itself.
SESSION_COLUMNS = frozenset({
    "site_id", "day", "session_id", "anon_id", "started_at", "ended_at", "device", "visitor", "steps",
    "entered", "furthest", "furthest_index", "purchased", "abandoned_at", "obstacle_steps", "obstacle_kinds",
    "detail_views", "fast_track_views", "events", "transitions", "ms_before_abandon", "revenue", "currency",
    "source", "medium", "campaign", "term", "content", "click_id", "referrer_host", "landing_path", "pages",
    "product_views", "searches", "cart_value", "first_interaction_ms", "clicks_to_goal", "earlier_cart",
})
_SQL_WORDS = frozenset({
    "and", "or", "not", "in", "is", "null", "like", "ilike", "between", "true", "false", "case", "when",
    "then", "else", "end", "interval", "second", "minute", "hour", "day", "week", "month", "year",
})
_TOKEN = re.compile(r"""\s+|'(?:[^'\\]|\\.)*'|\d+(?:\.\d+)?(?:e[+-]?\d+)?|[A-Za-z_][A-Za-z0-9_.]*"""
                    r"""|<=|>=|!=|<>|==|[-+*/%<>=(),\[\]]""", re.I)


def check_segment_where(where: str) -> str:
    """"" when `where` reads as an expression over chain_sessions' columns, else the problem.
    The store checks types when a rollup starts (ingestion/rollup.py, check_segments)."""
    pos, depth, prev = 0, 0, ""
    while pos < len(where):
        match = _TOKEN.match(where, pos)
        if not match:
            return f"cannot read {where[pos:pos + 20]!r}"
        token, pos = match.group(), match.end()
        if token.isspace():
            continue
        depth += {"(": 1, ")": -1}.get(token, 0)
        if depth < 0:
            return "unbalanced parentheses"
        if token[0].isalpha() or token[0] == "_":
            lower = token.lower()
            if lower in ("select", "from", "settings", "format"):
                return f"{token!r}: a condition, not a query"
            follows = where[pos:].lstrip()[:1]
            if follows != "(" and lower not in _SQL_WORDS and token not in SESSION_COLUMNS:
                return f"unknown column {token!r} (chain_sessions has {', '.join(sorted(SESSION_COLUMNS))})"
        prev = token
    if depth:
        return "unbalanced parentheses"
    return "" if prev else "empty"


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
    cookieless: bool = False  # the snippet stores nothing in the browser
    require_consent: bool = False  # the snippet waits for chainlens('consent', true)
    session_minutes: int = 30
    scrub_query: bool = True  # drop URL query strings and fragments before storing

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
        chain, last = self.chain, self.chain[-1]
        after_cart = self.chain[self.chain.index(self.checkout_from) + 1]
        wanted = {name: step for step, names in DEFAULT_EVENTS.items() for name in names}
        out = {name: step for name, step in wanted.items() if step in chain}
        for name in ("add_to_cart", "view_cart", "product_added_to_cart", "cart_viewed"):
            out.setdefault(name, self.checkout_from)
        for name in ("begin_checkout", "checkout_started"):
            out.setdefault(name, after_cart)
        if self.product_step in chain and chain.index(self.product_step) > 0:
            for name in LIST_VIEWS:  # a chain without `discover`: its first step, the browsing one
                out.setdefault(name, chain[0])
        out["purchase"] = out["checkout_completed"] = last
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

    @property
    def search_step(self) -> str:
        if self.behavior.search_step:
            return self.behavior.search_step
        at = self.chain.index(self.product_step) if self.product_step in self.chain else 0
        return self.chain[at - 1] if at > 0 else ""

    @property
    def goal_step(self) -> str:
        return self.landing.goal_step or self.product_step

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


def default_sites() -> tuple[Site, ...]:
    return (
        Site(
            id="demo",
            origins=("http://127.0.0.1:8000", "http://localhost:8000"),
            secret="change-me",
            step_urls={"select": ("/product/*",), "cart": ("/cart",)},
        ),
    )


def load(path: str | None = None, *, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the settings from the file named by `path`, the environment, or the defaults."""
    env = os.environ if environ is None else environ
    candidate = path or env.get("CHAINLENS_CONFIG") or None
    if candidate is None and Path("chainlens.toml").is_file():
        candidate = "chainlens.toml"
    if candidate is None:
        settings = Settings(sites=default_sites())
    else:
        try:
            with open(candidate, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(candidate, "-", "file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(candidate, "-", f"not valid TOML: {exc}") from None
        settings = from_mapping(raw, source=candidate)
    dsn = env.get("CHAINLENS_DSN")
    if dsn:
        settings = dataclasses.replace(settings, store=dataclasses.replace(settings.store, dsn=dsn))
    return settings


# What a running process cannot change without a restart: its sockets, its spool and store,
# the limits its server was built with. A reload keeps the values it started with.
RESTART_ONLY = ("host", "port", "workers", "spool_dir", "spool_max_bytes", "max_body_bytes", "idle_timeout_s",
                "flush_interval_s")


def reload(current: Settings, *, environ: Mapping[str, str] | None = None) -> tuple[Settings, list[str]]:
    """The settings file read again (SIGHUP, `chainlens reload`): sites, origins, rules, alerts,
    rollup and the other collector settings take effect; the keys that need a restart keep their
    running values and are named in the second item. ConfigError leaves everything as it was."""
    if current.source == "<defaults>":
        raise ConfigError("<defaults>", "-", "started without a settings file: there is nothing to read again")
    new = load(current.source, environ=environ)
    kept = [f"collector.{name}" for name in RESTART_ONLY
            if getattr(new.collector, name) != getattr(current.collector, name)]
    kept += [f"rollup.{name}" for name in ("every_s", "enabled")  # the schedule is set at start
             if getattr(new.rollup, name) != getattr(current.rollup, name)]
    if new.store != current.store:
        kept.append("store.dsn")
    collector = dataclasses.replace(new.collector, **{n: getattr(current.collector, n) for n in RESTART_ONLY})
    rollup = dataclasses.replace(new.rollup, every_s=current.rollup.every_s, enabled=current.rollup.enabled)
    return dataclasses.replace(new, store=current.store, collector=collector, rollup=rollup), kept


def reread(current: Settings, log: logging.Logger) -> tuple[Settings, list[str], str]:
    """`reload`, logged the same way in every process of `serve`: (the new settings, the keys kept
    until a restart, "") or, when the file does not read, (the current settings, [], the error)."""
    try:
        new, kept = reload(current)
    except ConfigError as exc:
        log.error("settings not reloaded; running on the previous ones", extra={"error": str(exc)})
        return current, [], str(exc)
    log.info("settings reloaded", extra={"source": new.source, "restart_needed": kept})
    return new, kept, ""


def from_mapping(raw: Mapping[str, Any], *, source: str = "<mapping>") -> Settings:
    known = {"store", "collector", "rollup", "sites"}
    for key in raw:
        if key not in known:
            raise ConfigError(source, key, f"unknown key (expected one of {', '.join(sorted(known))})")
    sections = {
        name: _build(cls, raw.get(name, {}), source, name)
        for name, cls in (("store", StoreSettings), ("collector", CollectorSettings), ("rollup", RollupSettings))
    }
    raw_sites = raw.get("sites", None)
    if raw_sites is None:
        sites = default_sites()
    else:
        if not isinstance(raw_sites, list):
            raise ConfigError(source, "sites", "must be an array of tables ([[sites]])")
        sites = tuple(_build(Site, s, source, f"sites[{i}]") for i, s in enumerate(raw_sites))
    seen: set[str] = set()
    for i, site in enumerate(sites):
        _check_site(site, source, f"sites[{i}]")
        if site.id in seen:
            raise ConfigError(source, f"sites[{i}].id", f"duplicate site id {site.id!r}")
        seen.add(site.id)
    settings = Settings(**sections, sites=sites, source=source)
    if settings.collector.workers < 0:
        raise ConfigError(source, "collector.workers", "must be 0 (one per core) or more")
    cfg = settings.collector
    if cfg.host not in LOOPBACK and not cfg.public_url:
        # The snippet and its beacons would point at this bind address (http://0.0.0.0:…).
        raise ConfigError(source, "collector.public_url",
                          f"required when collector.host is {cfg.host!r}: the address browsers reach the "
                          "collector at (for example https://collect.shop.example)")
    return settings


def _check_site(site: Site, source: str, where: str) -> None:
    if not site.id or not site.id.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(source, f"{where}.id", "must be letters, digits, '-' or '_'")
    if len(site.chain) < 2 or len(set(site.chain)) != len(site.chain):
        raise ConfigError(source, f"{where}.chain", "needs at least two distinct steps")
    if not site.checkout_from:
        raise ConfigError(source, f"{where}.checkout_from", "missing: name the chain step where checkout starts")
    if site.checkout_from not in site.chain[:-1]:
        raise ConfigError(source, f"{where}.checkout_from",
                          f"{site.checkout_from!r} is not a chain step before the last")
    for step in site.step_urls:
        if step not in site.chain and step not in site.after_steps:
            raise ConfigError(source, f"{where}.step_urls.{step}", "not a step of the chain or after_purchase")
    for name, step in site.events.items():
        if step not in site.chain:
            raise ConfigError(source, f"{where}.events.{name}", f"{step!r} is not a step of the chain")
    for step, key in ((site.behavior.product_step, "behavior.product_step"),
                      (site.behavior.search_step, "behavior.search_step"),
                      (site.landing.goal_step, "landing.goal_step")):
        if step and step not in site.chain:
            raise ConfigError(source, f"{where}.{key}", f"{step!r} is not a step of the chain")
    for i, step in enumerate(site.after_purchase):
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", step) or step in site.chain or step == TRACKING_VIEWED:
            raise ConfigError(source, f"{where}.after_purchase[{i}]",
                              f"{step!r}: must be lowercase letters, digits or '_', and not a chain step")
    act = site.intervene
    for step in act.steps:
        if step not in site.chain[:-1]:
            raise ConfigError(source, f"{where}.intervene.steps", f"{step!r} is not a chain step before the last")
    if not 0 <= act.holdout < 1:
        raise ConfigError(source, f"{where}.intervene.holdout", "must be at least 0 and below 1")
    for trigger in act.triggers:
        if trigger not in TRIGGERS:
            raise ConfigError(source, f"{where}.intervene.triggers", f"{trigger!r} is not one of {', '.join(TRIGGERS)}")
    if act.idle_s != "auto" and not (isinstance(act.idle_s, float) and act.idle_s > 0):
        raise ConfigError(source, f"{where}.intervene.idle_s", "must be \"auto\" or a number of seconds above 0")
    names: set[str] = set()
    for i, segment in enumerate(site.segments):
        key = f"{where}.segments[{i}]"
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", segment.name):
            raise ConfigError(source, f"{key}.name", "must be lowercase letters, digits or '_', at most 40")
        if segment.name in names or segment.name in (*BUILTIN_SEGMENTS, "all"):
            raise ConfigError(source, f"{key}.name", f"segment {segment.name!r} is already defined")
        names.add(segment.name)
        problem = check_segment_where(segment.where)
        if problem:
            raise ConfigError(source, f"{key}.where", f"segment {segment.name!r}: {problem}")
    try:
        zoneinfo.ZoneInfo(site.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(source, f"{where}.timezone", f"unknown time zone {site.timezone!r}") from None


def _build(cls: type, raw: Any, source: str, where: str) -> Any:
    """Check a TOML table against a frozen dataclass: unknown keys and wrong types are errors."""
    if not isinstance(raw, dict):
        raise ConfigError(source, where, "must be a table")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            raise ConfigError(source, f"{where}.{key}", f"unknown key (expected one of {', '.join(fields)})")
        values[key] = _convert(hints[key], value, source, f"{where}.{key}")
    missing = [
        name for name, f in fields.items()
        if name not in values and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(source, f"{where}.{missing[0]}", "missing")
    if cls is Site and "checkout_from" not in values and "chain" in values:
        raise ConfigError(source, f"{where}.checkout_from", "missing: a custom chain must name where checkout starts")
    return cls(**values)


def _convert(hint: Any, value: Any, source: str, key: str) -> Any:
    origin = typing.get_origin(hint)
    if origin is types.UnionType:  # the first alternative that takes the value
        for option in typing.get_args(hint):
            try:
                return _convert(option, value, source, key)
            except ConfigError:
                continue
        names = " or ".join(getattr(o, "__name__", str(o)) for o in typing.get_args(hint))
        raise ConfigError(source, key, f"expected {names}, got {value!r}")
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, source, key)  # type: ignore[arg-type]
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(source, key, f"expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(source, key, f"expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(source, key, f"expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(source, key, f"expected a string, got {value!r}")
    if origin is tuple and dataclasses.is_dataclass(typing.get_args(hint)[0]):
        if not isinstance(value, list):
            raise ConfigError(source, key, "expected an array of tables")
        return tuple(_build(typing.get_args(hint)[0], v, source, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is tuple:
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise ConfigError(source, key, f"expected a list of strings, got {value!r}")
    if origin in (Mapping, dict) or origin is typing.get_origin(Mapping[str, str]):
        if not isinstance(value, dict):
            raise ConfigError(source, key, "expected a table")
        _, item = typing.get_args(hint)
        # A plain dict (not a MappingProxy) so settings pickle into worker processes.
        return {k: _convert(item, v, source, f"{key}.{k}") for k, v in value.items()}
    raise ConfigError(source, key, f"unsupported setting type {hint!r}")  # pragma: no cover


def dump_toml(config: Mapping[str, Any]) -> str:
    """Write a settings mapping (as `from_mapping` takes it) as TOML, e.g. for a generated demo config."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list | tuple):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    def key(k: str) -> str:  # step names such as checkout.info need quoting
        return k if k.replace("_", "").replace("-", "").isalnum() else value(k)

    def tables(v: Any) -> bool:
        return isinstance(v, list | tuple) and bool(v) and all(isinstance(x, Mapping) for x in v)

    def table(name: str, body: Mapping[str, Any], array: bool = False) -> None:
        lines.append(f"[[{name}]]" if array else f"[{name}]")
        lines.extend(f"{key(k)} = {value(v)}" for k, v in body.items() if not isinstance(v, Mapping) and not tables(v))
        for k, v in body.items():
            if isinstance(v, Mapping):
                table(f"{name}.{k}", v)
            elif tables(v):
                for item in v:
                    table(f"{name}.{k}", item, array=True)

    for section, body in config.items():
        if section == "sites":
            for site in body:
                table("sites", site, array=True)
        else:
            table(section, body)
    return "\n".join(lines) + "\n"
