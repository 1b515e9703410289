"""`chainlens forget` and `chainlens export` (docs/privacy.md): through the running collector
when one holds the store, else on the store itself, loading what the spool still holds first."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson

from chainlens.core import clock
from chainlens.core.settings import Settings, Site, is_embedded
from chainlens.store_access import CommandError, admin_call, direct_store, require_store, running_service
from ingestion import lifecycle, schedule
from ingestion.loader import Loader
from ingestion.runner import StoreRunner


def add_commands(command: Any) -> None:
    p = command("forget", cmd_forget, "remove everything stored about one shopper or order, and rebuild what "
                                      "counted them (docs/privacy.md)")
    p.add_argument("site")
    who = p.add_mutually_exclusive_group(required=True)
    for kind in lifecycle.KINDS:
        who.add_argument(f"--{kind}", metavar="ID")
    p.add_argument("--dry-run", action="store_true", help="print what would be removed, per table; remove nothing")
    p = command("export", cmd_export, "print everything stored about one shopper as JSON lines (an access request)")
    p.add_argument("site")
    who = p.add_mutually_exclusive_group(required=True)
    for kind in ("user", "visitor"):
        who.add_argument(f"--{kind}", metavar="ID")


def _asked(settings: Settings, args: argparse.Namespace) -> tuple[Site, str, str]:
    site = settings.site(args.site)
    if site is None:
        raise CommandError(f"unknown site {args.site!r}", 2)
    kind = next(k for k in lifecycle.KINDS if getattr(args, k, None) is not None)
    key = getattr(args, kind)
    if not key:
        raise CommandError(f"--{kind}: an id is required", 2)
    return site, kind, key


def cmd_forget(settings: Settings, args: argparse.Namespace) -> int:
    site, kind, key = _asked(settings, args)
    link = running_service(settings)
    if link:
        body = {"site": site.id, "what": kind, "key": key, "dry_run": args.dry_run}
        summary = orjson.loads(admin_call(link, "/admin/forget", orjson.dumps(body)))
    else:
        summary = asyncio.run(_forget_here(settings, site, kind, key, dry_run=args.dry_run))
    print(summary_text(summary))
    return 0


async def _forget_here(settings: Settings, site: Site, kind: str, key: str, *, dry_run: bool) -> dict[str, Any]:
    require_store(settings)
    runner = StoreRunner(settings.store.dsn)
    try:
        if not dry_run and is_embedded(settings.store.dsn):
            # No collector runs: what its spool still holds would arrive after the forget.
            loader = Loader(Path(settings.collector.spool_dir), runner)
            while await loader.load_once():
                pass
        return await schedule.exclusively(settings, runner, asyncio.Lock(), lifecycle.forget, site, kind, key,
                                          dry_run=dry_run, timeout_s=settings.rollup.session_timeout_s,
                                          now=clock.now())
    except ValueError as exc:
        raise CommandError(str(exc), 2) from None
    finally:
        await runner.close()


def summary_text(s: dict[str, Any]) -> str:
    verb = "would remove" if s["dry_run"] else "removed"
    lines = [f"forget {s['what']} on site {s['site']} (audit name {s['key_hash'][:16]}…): {s['sessions']} "
             f"session(s), {s['orders']} order(s)"]
    lines += [f"  {verb} {n:>8,} rows from {table}" for table, n in s["rows"].items()]
    days = s["days"]
    span = f" ({days[0]} .. {days[-1]})" if days else ""
    if s["dry_run"]:
        lines.append(f"  would rebuild the daily tables of {len(days)} day(s){span}")
    else:
        lines.append(f"  rebuilt the daily tables of {s['days_rebuilt']} day(s){span}; staging copies emptied; "
                     f"{s['seconds']} s; audited in forget_log")
    return "\n".join(lines)


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    site, kind, key = _asked(settings, args)
    link = running_service(settings)
    if link:
        sys.stdout.buffer.write(admin_call(link, "/admin/export", orjson.dumps({"site": site.id, "what": kind,
                                                                                "key": key})))
        return 0
    with direct_store(settings, create=False) as client:
        try:
            for line in lifecycle.export(client, site, kind, key):
                sys.stdout.buffer.write(orjson.dumps(line, default=str) + b"\n")
        except ValueError as exc:
            raise CommandError(str(exc), 2) from None
    return 0
