"""The `chainlens` command line (DESIGN, "Command line").

`sql`, `import` and `rollup` work on the store directly when no collector
runs, and through the running collector's admin API when one holds the store
(an embedded directory has a single owner).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

from chainlens import settings as settings_mod
from chainlens.settings import ConfigError, Settings


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_mod.load(args.config)
    except ConfigError as exc:
        print(f"chainlens: config error: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.func(settings, args) or 0)
    except CommandError as exc:
        print(f"chainlens {args.command}: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        return 130


class CommandError(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


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
    p = command("rollup", cmd_rollup, "materialize the rollup tables; idempotent")
    p.add_argument("--since", help="first day (YYYY-MM-DD) to recompute")
    p.add_argument("--until", help="last day (YYYY-MM-DD) to recompute")
    p = command("sql", cmd_sql, "run SQL against the store")
    p.add_argument("query")
    p.add_argument("--format", default="PrettyCompact", help="a ClickHouse output format (JSONEachRow, TSVWithNames…)")
    p = command("import", cmd_import, "load a JSON-lines file of events (collector validation, no age limit)")
    p.add_argument("file")
    p.add_argument("--site", required=True)
    p = command("alerts", cmd_alerts, "list recent early-warning alerts")
    p.add_argument("--site")
    p.add_argument("--limit", type=int, default=20)
    p = command("demo", cmd_demo, "the main job on the embedded default: store, traffic, rollups, tables")
    p.add_argument("--keep-running", action="store_true", help="leave the collector and storefront up")
    p.add_argument("--sessions", type=int, default=0, help="shopper sessions to simulate (default: the demo's)")
    return parser


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from collector.serve import serve
    return serve(settings)


def cmd_snippet(settings: Settings, args: argparse.Namespace) -> int:
    from sdk_js.render import snippet_tag
    site = settings.site(args.site)
    if site is None:
        raise CommandError(f"unknown site {args.site!r}", 2)
    print(snippet_tag(site, public_url=settings.collector.url()))
    return 0


def cmd_sql(settings: Settings, args: argparse.Namespace) -> int:
    sys.stdout.buffer.write(run_query(settings, args.query, fmt=args.format))
    sys.stdout.flush()
    return 0


def run_query(settings: Settings, query: str, *, fmt: str, parameters: dict[str, Any] | None = None) -> bytes:
    """A query's output in a ClickHouse format, through the running service or directly."""
    link = running_service(settings)
    if link:
        body = {"query": query, "format": fmt, "parameters": parameters}
        return admin_call(link, "/admin/sql", orjson.dumps(body))
    with direct_store(settings) as client:
        try:
            return bytes(client.raw_query(query, parameters=parameters, fmt=fmt))
        except Exception as exc:
            raise CommandError(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)) from None


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from ingestion.imports import CHUNK_LINES, import_lines
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
    import datetime as dt
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
    for s in summary["sites"]:
        days = f"{s['days'][0]}..{s['days'][-1]} ({len(s['days'])} days)" if s["days"] else "nothing new"
        print(f"{s['site']}: {days}, {s['sessions']} sessions, {s['seconds']} s")
        for message in s["alerts"]:
            print(f"  ALERT {message}")
    return 0


async def _rollup_here(settings: Settings, since: Any, until: Any) -> dict[str, Any]:
    from tqdm import tqdm

    from ingestion.runner import StoreRunner
    from ingestion.schedule import run_pass
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
    from ingestion.alerts import list_alerts_query
    query, params = list_alerts_query(site=args.site, limit=args.limit)
    sys.stdout.buffer.write(run_query(settings, query, fmt="PrettyCompactMonoBlock", parameters=params))
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    from chainlens.demo import run_demo
    return run_demo(settings, keep_running=args.keep_running, sessions=args.sessions or None)


# -- reaching the store -------------------------------------------------------------------------


def running_service(settings: Settings) -> dict[str, Any] | None:
    """The admin address of a `chainlens serve` that holds this embedded store, if one runs.

    A server store (http/https) has no single owner: commands connect to it directly.
    """
    from ingestion.service import admin_file
    from ingestion.store import is_embedded
    if not is_embedded(settings.store.dsn):
        return None
    try:
        info = orjson.loads(admin_file(settings).read_bytes())
        os.kill(int(info["pid"]), 0)
    except (FileNotFoundError, ProcessLookupError, PermissionError, ValueError, KeyError, orjson.JSONDecodeError):
        return None
    return dict(info)


def admin_call(link: dict[str, Any], path: str, body: bytes) -> bytes:
    import urllib.error
    import urllib.request
    request = urllib.request.Request(
        link["url"] + path, data=body, method="POST",
        headers={"Authorization": f"Bearer {link['token']}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=600) as resp:
            return bytes(resp.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read()
        try:
            message = orjson.loads(detail)["error"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            message = detail.decode(errors="replace")
        raise CommandError(message) from None
    except urllib.error.URLError as exc:
        raise CommandError(f"the running collector did not answer: {exc.reason}") from None


class direct_store:
    """Open the store in this process (no collector holds it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __enter__(self) -> Any:
        from ingestion import store
        try:
            self.client = store.connect(self.settings.store.dsn)
            store.ensure_schema(self.client)
        except Exception as exc:
            raise CommandError(f"cannot open the store {self.settings.store.dsn!r}: {exc}") from None
        return self.client

    def __exit__(self, *exc: object) -> None:
        self.client.close()


if __name__ == "__main__":
    sys.exit(main())
