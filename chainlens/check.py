"""`chainlens check SITE URL`: is a store page tagged right, and does its data arrive?

Fetches the page as a browser would, finds the snippet's `<script>` tag, compares
its `src` and SRI hash with what the collector serves for the site now (a
stale hash makes browsers refuse the script), and asks the store whether
events from the site arrived in the last 30 minutes.
"""

from __future__ import annotations

import html.parser
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from chainlens.core.settings import Settings, Site
from chainlens.store_access import CommandError, admin_call, live_states, running_service
from sdk_js.render import render, switches, switches_in

USER_AGENT = "Mozilla/5.0 (compatible; chainlens-check)"


class _Scripts(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script":
            self.scripts.append({k: v or "" for k, v in attrs})


@dataclass
class Report:
    ok: bool = True
    lines: list[str] = field(default_factory=list)

    def good(self, text: str) -> None:
        self.lines.append(f"ok    {text}")

    def bad(self, text: str) -> None:
        self.ok = False
        self.lines.append(f"FAIL  {text}")


def fetch(url: str) -> str:
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "text/html"})
    try:
        with urllib.request.urlopen(request, timeout=15) as resp:
            return str(resp.read(2 << 20).decode(resp.headers.get_content_charset() or "utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        raise CommandError(f"{url} answered {exc.code}", 1) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CommandError(f"could not fetch {url}: {getattr(exc, 'reason', exc)}", 1) from None


def check_page(settings: Settings, site: Site, url: str) -> Report:
    report = Report()
    link = running_service(settings)
    parser = _Scripts()
    parser.feed(fetch(url))
    want_src = f"{settings.collector.url()}/sdk/{site.id}.js"
    tags = [s for s in parser.scripts if s.get("src", "").split("?")[0].endswith(f"/sdk/{site.id}.js")]
    if not tags:
        report.bad(f"no <script src=\"…/sdk/{site.id}.js\"> on {url}: paste what `chainlens snippet {site.id}` "
                   "prints into the page's <head>")
    else:
        tag = tags[0]
        src = urllib.parse.urljoin(url, tag["src"])
        if src.split("?")[0] == want_src:
            report.good(f"the tag loads {want_src}")
        else:
            report.bad(f"the tag loads {src}, but the collector is at {want_src} (collector.public_url)")
        try:
            given = switches_in(src)
        except ValueError as exc:
            given = None
            report.bad(f"the tag's URL is not one `chainlens snippet` prints: {exc}")
        current = switches(site)
        if given is None:  # a tag from before the switches were in its URL: it follows the settings
            served = (link and _served_integrity(link, site.id)) or render(
                site, public_url=settings.collector.url()).integrity
        else:
            served = render(site, public_url=settings.collector.url(), given=given).integrity
        if given is not None and given != current:
            changed = ", ".join(f"{k} {given[k]} → {current[k]}" for k in current if given[k] != current[k])
            report.lines.append(f"note  the page carries an earlier tag ({changed}): it keeps working as it was; "
                                f"paste what `chainlens snippet {site.id}` prints now for the new settings")
        if tag.get("integrity") == served:
            report.good("its SRI hash matches the script the collector serves for it")
        elif not tag.get("integrity"):
            report.good("it has no SRI hash (browsers load the script unchecked)")
        else:
            report.bad(f"its SRI hash {tag['integrity'][:20]}… is not the served script's {served[:20]}…: browsers "
                       f"refuse the script; paste the tag `chainlens snippet {site.id}` prints now")
    origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(url))
    if origin not in site.origins:
        report.bad(f"the page's origin {origin} is not in sites.origins of site {site.id}: the collector refuses "
                   f"every beacon from it (403); add it to {settings.source}, then run `chainlens reload`")
    (state,) = live_states(settings, [site], link=link)
    own = sum(r["count"] for r in state["refused_30m"] if r["code"] == "origin_refused" and r["detail"] == origin)
    if own:
        report.bad(f"{own} beacons from {origin} refused in the last 30 minutes")
    if state["events_30m"]:
        report.good(f"{state['events_30m']} events from site {site.id} in the last 30 minutes "
                    f"(last at {state['last_event_at']})")
    else:
        last = state["last_event_at"] or "never"
        report.bad(f"no events from site {site.id} in the last 30 minutes (last: {last}); open the page in a "
                   "browser, then see `chainlens status` for refusals")
    for refused in state["refused_30m"][:3]:
        report.lines.append(f"      refused {refused['count']}×: {refused['reason']}"
                            + (f"\n      fix: {refused['fix']}" if refused["fix"] else ""))
    return report


def _served_integrity(link: dict[str, Any], site_id: str) -> str:
    text = admin_call(link, "/admin/snippet?" + urllib.parse.urlencode({"site": site_id}), None).decode()
    marker = 'integrity="'
    start = text.find(marker)
    return text[start + len(marker):text.find('"', start + len(marker))] if start >= 0 else ""

