"""The `chainlens` command line (README, "Commands").

`sql`, `import` and `rollup` work on the store directly when no collector
runs, and through the running collector's admin API when one holds the store
(an embedded directory has a single owner).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import signal
import sys
import time
import tomllib
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from chainlens import privacy
from chainlens.check import check_page
from chainlens.core import loading
from chainlens.core.owner import held_by
from chainlens.core.settings import ConfigError, Settings
from chainlens.demo.run import run_demo
from chainlens.serve import serve
from chainlens.store_access import (
    CommandError,
    admin_call,
    direct_store,
    live_states,
    require_store,
    run_query,
    running_service,
    site_parameters,
)
from ingestion.alerts import list_alerts_query
from ingestion.imports import CHUNK_LINES, import_lines
from ingestion.live import live_text
from ingestion.runner import StoreRunner
from ingestion.schedule import run_pass
from sdk_js.render import shopify_pixel, snippet_tag, switches_in


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = loading.load(args.config)
    except ConfigError as exc:
        print(f"chainlens: config error: {exc}", file=sys.stderr)
        if args.command == "status":  # the running collector still answers, on its last good settings
            return _status_despite(exc, args)
        return 2
    try:
        return int(args.func(settings, args) or 0)
    except ConfigError as exc:  # found once the store is reached (a segment's condition, say)
        print(f"chainlens: config error: {exc}", file=sys.stderr)
        return 2
    except CommandError as exc:
        print(f"chainlens {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `chainlens sql … | head`: the reader left; nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config",
                        help="TOML settings file (else $CHAINLENS_CONFIG, ./chainlens.toml, defaults)")
    parser = argparse.ArgumentParser(prog="chainlens", description="Consumption-chain analytics for online stores.")
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, func: Callable[[Settings, argparse.Namespace], int | None], text: str) -> Any:
        p = sub.add_parser(name, parents=[common], help=text, description=text)
        p.set_defaults(func=func)
        return p

    command("serve", cmd_serve, "run the collector (and its scheduled rollups)")
    p = command("snippet", cmd_snippet, "print the <script> tag (with SRI hash) for a site")
    p.add_argument("site")
    p.add_argument("--shopify", action="store_true",
                   help="print the custom pixel for Shopify's Customer Events instead")
    p = command("rollup", cmd_rollup, "materialize the rollup tables; idempotent")
    p.add_argument("--since", help="first day (YYYY-MM-DD) to recompute")
    p.add_argument("--until", help="last day (YYYY-MM-DD) to recompute")
    p = command("status", cmd_status, "is data arriving: recent events, open sessions, refusals and their fix")
    p.add_argument("--site", help="one site (default: every site)")
    p = command("check", cmd_check, "is a shop's page tagged right (tag, SRI hash), and does its data arrive?")
    p.add_argument("site")
    p.add_argument("url", help="a page of the store, e.g. https://shop.example/")
    command("reload", cmd_reload, "make the running collector read its settings file again (as SIGHUP does)")
    p = command("sql", cmd_sql, "run SQL against the store")
    p.add_argument("query")
    p.add_argument("--format", default="PrettyCompact", help="a ClickHouse output format (JSONEachRow, TSVWithNames…)")
    p.add_argument("--site", help="fills {site:String}, {tz:String}, {chain:Array(String)}… (docs/queries.md; "
                                  "default: the first site)")
    p.add_argument("--write", action="store_true",
                   help="allow statements that change the store (read-only without it; see docs/architecture.md)")
    p = command("import", cmd_import, "load a JSON-lines file of events (collector validation, no age limit)")
    p.add_argument("file")
    p.add_argument("--site", required=True)
    p = command("alerts", cmd_alerts, "list recent early-warning alerts")
    p.add_argument("--site")
    p.add_argument("--limit", type=int, default=20)
    privacy.add_commands(command)
    p = command("demo", cmd_demo, "the main job on the embedded default: store, traffic, rollups, tables")
    p.add_argument("--keep-running", action="store_true", help="leave the collector and storefront up")
    p.add_argument("--sessions", type=int, default=0, help="shopper sessions to simulate (default: the demo's)")
    return parser


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    return serve(settings)


def cmd_snippet(settings: Settings, args: argparse.Namespace) -> int:
    site = settings.site(args.site)
    if site is None:
        raise CommandError(f"unknown site {args.site!r}", 2)
    make = shopify_pixel if args.shopify else snippet_tag
    text = make(site, public_url=settings.collector.url()).rstrip("\n")
    link = running_service(settings)
    if link:
        # What the running collector serves is what the pages must carry.
        query = urllib.parse.urlencode({"site": site.id, **({"shopify": "1"} if args.shopify else {})})
        served = admin_call(link, f"/admin/snippet?{query}", None).decode().rstrip("\n")
        if served != text:
            print(f"chainlens snippet: the running collector (pid {link['owner']}) still serves the settings it "
                  f"loaded before {settings.source} changed; this is what it serves now. Run `chainlens reload` "
                  "to serve the file's version.", file=sys.stderr)
        text = served
    print(text)
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    sites = [s for s in settings.sites if not args.site or s.id == args.site]
    if not sites:
        raise CommandError(f"unknown site {args.site!r}", 2)
    link = running_service(settings)
    states = live_states(settings, sites, link=link)
    if not link:
        print("(no collector runs on this store: these are the stored events)")
    for state in states:
        print(live_text(state))
    return 0


def _status_despite(error: ConfigError, args: argparse.Namespace) -> int:
    """`status` when the settings file does not load: what the collector that runs on its spool
    (as far as the file can be read) says, with the sites it names. Exit 2 either way."""
    raw: dict[str, Any] = {}
    with contextlib.suppress(OSError, tomllib.TOMLDecodeError):
        raw = tomllib.loads(Path(error.source).read_text())
    def text(table: str, key: str) -> str | None:
        part = raw.get(table)
        value = part.get(key) if isinstance(part, dict) else None
        return value if isinstance(value, str) else None

    spool, dsn = text("collector", "spool_dir"), text("store", "dsn")
    fallback = loading.from_mapping({"collector": {"spool_dir": spool} if spool else {},
                                          "store": {"dsn": dsn} if dsn else {}})
    ids = [s["id"] for s in raw.get("sites", []) if isinstance(s, dict) and isinstance(s.get("id"), str)]
    try:
        link = running_service(fallback)
        if link is None:
            return 2
        print(f"(the running collector's live state, on the settings it last read; {error.source} does not load)")
        for site_id in [args.site] if args.site else ids or ["demo"]:
            try:
                print(live_text(orjson.loads(admin_call(
                    link, "/admin/live?" + urllib.parse.urlencode({"site": site_id}), None))))
            except CommandError as exc:
                print(f"site {site_id}: {exc}")
    except CommandError as exc:
        print(f"chainlens status: {exc}", file=sys.stderr)
    return 2


def cmd_check(settings: Settings, args: argparse.Namespace) -> int:
    site = settings.site(args.site)
    if site is None:
        raise CommandError(f"unknown site {args.site!r}", 2)
    report = check_page(settings, site, args.url)
    print("\n".join(report.lines))
    return 0 if report.ok else 1


def cmd_reload(settings: Settings, args: argparse.Namespace) -> int:
    """SIGHUP to the `serve` that owns this spool, then wait until its store process has reloaded."""
    pid = held_by(settings)
    if pid is None or pid < 0:
        raise CommandError(f"no chainlens serve runs on {settings.collector.spool_dir}: nothing to reload", 2)
    link = running_service(settings)
    assert link is not None
    before = orjson.loads(admin_call(link, "/admin/status", None))["config_reload_attempts"]
    tags = _served_switches(link, settings)
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        state = orjson.loads(admin_call(link, "/admin/status", None))
        if state["config_reload_attempts"] > before:
            if state["config_error"]:
                raise CommandError(f"chainlens serve (pid {pid}) kept its previous settings: {state['config_error']}")
            print(f"chainlens serve (pid {pid}) runs with {settings.source} as it is now")
            for site_id, now in _served_switches(link, settings).items():
                was = tags.get(site_id)
                if was and was != now:
                    changed = ", ".join(f"{k} {was[k]} → {now[k]}" for k in now if was[k] != now[k])
                    print(f"site {site_id}: the script's settings changed ({changed}): pages keep working with "
                          f"the tag they carry, as before; paste what `chainlens snippet {site_id}` prints for "
                          f"the new behaviour (`chainlens check {site_id} URL` tells a page's tag)")
            return 0
        time.sleep(0.1)
    raise CommandError(f"chainlens serve (pid {pid}) did not confirm the reload within 15 s; see its log")


def _served_switches(link: dict[str, Any], settings: Settings) -> dict[str, dict[str, int]]:
    """Per site, the switches in the tag the running service prints (sdk_js/render.py)."""
    out = {}
    for site in settings.sites:
        try:
            tag = admin_call(link, "/admin/snippet?" + urllib.parse.urlencode({"site": site.id}), None).decode()
        except CommandError:  # a site the running service does not have (yet)
            continue
        src = tag.split('src="', 1)[1].split('"', 1)[0]
        given = switches_in(src)
        if given is not None:
            out[site.id] = given
    return out


def cmd_sql(settings: Settings, args: argparse.Namespace) -> int:
    site = settings.site(args.site) if args.site else (settings.sites[0] if settings.sites else None)
    if args.site and site is None:
        raise CommandError(f"unknown site {args.site!r}", 2)
    params = site_parameters(site, args.query) if site else None
    sys.stdout.buffer.write(run_query(settings, args.query, fmt=args.format, parameters=params, write=args.write))
    sys.stdout.flush()
    return 0


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    site = settings.site(args.site)
    if site is None:
        raise CommandError(f"unknown site {args.site!r}", 2)
    path = Path(args.file)
    if not path.is_file():
        raise CommandError(f"no such file: {path}", 2)
    link = running_service(settings)
    totals: dict[str, Any] = {"accepted": 0, "rejected": 0, "errors": []}

    def add(report: dict[str, Any]) -> None:
        totals["accepted"] += report["accepted"]
        totals["rejected"] += report["rejected"]
        totals["errors"].extend(report["errors"])

    if link:
        for first, chunk in _chunks(path, CHUNK_LINES):
            add(orjson.loads(admin_call(link, f"/admin/import?site={site.id}&first_line={first}", b"\n".join(chunk))))
    else:
        with direct_store(settings) as client:
            for first, chunk in _chunks(path, CHUNK_LINES):
                add(import_lines(client, chunk, site=site, first_line=first))
    for err in totals["errors"]:
        print(f"{path}:{err['line']}: rejected: {err['error']}", file=sys.stderr)
    print(f"imported {totals['accepted']} events into site {site.id!r}; "
          f"rejected {totals['rejected']} (kept in events_rejected)")
    return 3 if totals["rejected"] else 0


def _chunks(path: Path, size: int) -> Iterator[tuple[int, list[bytes]]]:
    chunk: list[bytes] = []
    first = 1
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            chunk.append(line.rstrip(b"\r\n"))
            if len(chunk) >= size:
                yield first, chunk
                chunk, first = [], number + 1
    if chunk:
        yield first, chunk


def cmd_rollup(settings: Settings, args: argparse.Namespace) -> int:
    """The same pass `serve` schedules (rollup, then alerts), there or here."""
    try:
        since, until = (dt.date.fromisoformat(v) if v else None for v in (args.since, args.until))
    except ValueError as exc:
        raise CommandError(f"--since/--until: not a date (YYYY-MM-DD): {exc}", 2) from None
    link = running_service(settings)
    if link:
        body = orjson.dumps({"since": args.since, "until": args.until})
        summary = orjson.loads(admin_call(link, "/admin/rollup", body))
    else:
        summary = asyncio.run(_rollup_here(settings, since, until))
    if "skipped" in summary:
        held = summary["skipped"]
        print(f"rollup skipped: {held['holder']} is running it (its lease runs until {held['until']})",
              file=sys.stderr)
        return 0
    for s in summary["sites"]:
        days = f"{s['days'][0]}..{s['days'][-1]} ({len(s['days'])} days)" if s["days"] else "nothing new"
        print(f"{s['site']}: {days}, {s['sessions']} sessions, {s['seconds']} s")
        for message in s["alerts"]:
            print(f"  ALERT {message}")
    return 0


async def _rollup_here(settings: Settings, since: Any, until: Any) -> dict[str, Any]:
    require_store(settings)
    runner = StoreRunner(settings.store.dsn)
    bar = tqdm(total=0, unit="chunk", desc="rollup", disable=not sys.stderr.isatty(), leave=False)

    def progress(done: int, total: int) -> None:  # chunks of days, per site
        if done == 1:
            bar.reset(total=total)
        bar.update(1)

    try:
        return await run_pass(settings, runner, lock=asyncio.Lock(), since=since, until=until, progress=progress)
    except Exception as exc:
        raise CommandError(f"rollup on {settings.store.dsn!r} failed: {exc}") from None
    finally:
        bar.close()
        await runner.close()


def cmd_alerts(settings: Settings, args: argparse.Namespace) -> int:
    query, params = list_alerts_query(site=args.site, limit=args.limit)
    sys.stdout.buffer.write(run_query(settings, query, fmt="PrettyCompactMonoBlock", parameters=params))
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    return run_demo(settings, keep_running=args.keep_running, sessions=args.sessions or None)


if __name__ == "__main__":
    sys.exit(main())
