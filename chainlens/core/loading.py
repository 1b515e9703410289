"""Settings built in one place: from a TOML file and the environment, checked, read again on
SIGHUP (README, "Configuration"). The model they build is chainlens/core/settings.py.

Resolution order for the file: `-c/--config`, then `$CHAINLENS_CONFIG`, then
`./chainlens.toml`, then built-in defaults that serve a `demo` site on an embedded store
under `./data`. `$CHAINLENS_DSN` overrides `store.dsn`. Nothing else in the project reads
`os.environ` for settings (core/metrics.py hands prometheus_client its multiprocess
directory through the environment, as that library asks).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import tomllib
import types
import typing
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chainlens.core.segment_where import check_segment_where
from chainlens.core.settings import (
    BUILTIN_SEGMENTS,
    LOOPBACK,
    TRACKING_VIEWED,
    TRIGGERS,
    CollectorSettings,
    ConfigError,
    RollupSettings,
    Settings,
    Site,
    StoreSettings,
)


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


MIN_KEEP_DAYS = 8


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
    for step in site.forms.steps:
        if step not in site.chain[:-1]:
            raise ConfigError(source, f"{where}.forms.steps", f"{step!r} is not a chain step before the last")
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
    for key in ("keep_raw_days", "keep_sessions_days"):
        # Raw events must outlive the 7 days a late event may re-open (docs/privacy.md, "Retention").
        if getattr(site, key) != 0 and getattr(site, key) < MIN_KEEP_DAYS:
            raise ConfigError(source, f"{where}.{key}", f"must be 0 (keep) or at least {MIN_KEEP_DAYS} days")
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
