"""Render the per-site snippet: the plain JS function applied to one JSON config.

The JS source (`chainlens.js`) holds no template logic; jinja2 injects the
site's config as one JSON object (`|tojson`) and the result is minified with
calmjs.parse. Rendered scripts are cached per site and config, so the collector
serves them without work and the SRI hash printed by `chainlens snippet`
matches what it serves.
"""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources

import jinja2
import orjson
from calmjs.parse import es5
from calmjs.parse.unparsers.es5 import minify_print

from chainlens.core.settings import Site

STUB = ("window.chainlens=window.chainlens||function(){(chainlens.q=chainlens.q||[]).push(arguments)};")


@dataclass(frozen=True)
class Script:
    body: bytes
    gzipped: bytes
    etag: str
    integrity: str


def switches(site: Site) -> dict[str, int]:
    """The settings the script itself applies (docs/snippet.md, "The tag"), as its tag's URL
    carries them: the served script follows the tag, so a page's SRI hash holds whatever the
    settings become, and a new tag is what brings a change to the pages."""
    return {"consent": int(site.require_consent), "cookieless": int(site.cookieless),
            "session_min": site.session_minutes}


def read_switches(query: Mapping[str, str]) -> dict[str, int] | None:
    """The switches a tag's URL names (None: a tag from before they were in it), or ValueError."""
    if not any(name in query for name in SWITCHES):
        return None
    try:
        got = {name: int(query[name]) for name in SWITCHES}
    except (KeyError, ValueError):
        raise ValueError(f"the script's URL needs {', '.join(SWITCHES)} as whole numbers") from None
    if got["consent"] not in (0, 1) or got["cookieless"] not in (0, 1) or not 1 <= got["session_min"] <= 1440:
        raise ValueError("consent and cookieless are 0 or 1, session_min 1 to 1440")
    return got


SWITCHES = ("consent", "cookieless", "session_min")


def switches_in(src: str) -> dict[str, int] | None:
    """The switches a tag's `src` URL names (read_switches), or ValueError."""
    return read_switches(dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(src).query)))


def site_config(site: Site, *, public_url: str, given: Mapping[str, int] | None = None) -> dict[str, object]:
    """What the script needs: where to send, and the switches (the site's, or those its tag names).
    Step rules stay on the server, so changing them leaves the script and its SRI hash as they are."""
    values = switches(site) if given is None else given
    return {
        "site": site.id,
        "url": public_url.rstrip("/"),
        "cookieless": bool(values["cookieless"]),
        "consent": bool(values["consent"]),
        "session_min": values["session_min"],
    }


@functools.cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(autoescape=False, keep_trailing_newline=False)
    return env.from_string((resources.files("sdk_js") / "snippet.js.j2").read_text())


@functools.cache
def _minified_source() -> str:
    # calmjs.parse renames local names too (not the globals the page shares), which
    # is what keeps the snippet under 2 KB gzipped.
    program = es5((resources.files("sdk_js") / "chainlens.js").read_text())
    return str(minify_print(program, obfuscate=True, obfuscate_globals=False)).rstrip(";\n ")


@functools.lru_cache(maxsize=256)
def _render(site_id: str, config_json: bytes) -> Script:
    return _script(_template().render(script=_minified_source(), config=config_json.decode()).strip().encode())


def _script(body: bytes) -> Script:
    digest = hashlib.sha384(body).digest()
    return Script(
        body=body,
        gzipped=gzip.compress(body, compresslevel=9, mtime=0),
        etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"',
        integrity="sha384-" + base64.b64encode(digest).decode(),
    )


def render(site: Site, *, public_url: str, given: Mapping[str, int] | None = None) -> Script:
    config = orjson.dumps(site_config(site, public_url=public_url, given=given), option=orjson.OPT_SORT_KEYS)
    return _render(site.id, config)


def script_url(site: Site, *, public_url: str) -> str:
    return f"{public_url.rstrip('/')}/sdk/{site.id}.js?{urllib.parse.urlencode(switches(site))}"


@functools.cache
def _risk_source() -> str:
    program = es5((resources.files("sdk_js") / "risk.js").read_text())
    return str(minify_print(program, obfuscate=True, obfuscate_globals=False)).rstrip(";\n ")


@functools.lru_cache(maxsize=256)
def _render_risk(config_json: bytes) -> Script:
    return _script(_template().render(script=_risk_source(), config=config_json.decode()).strip().encode())


def render_risk(site: Site, *, public_url: str) -> Script:
    """The risk script (docs/interventions.md): where to fetch the site's hints, nothing else, so
    its SRI hash does not change with the steps, holdout or thresholds."""
    config = orjson.dumps({"site": site.id, "url": public_url.rstrip("/")}, option=orjson.OPT_SORT_KEYS)
    return _render_risk(config)


def risk_tag(site: Site, *, public_url: str) -> str:
    script = render_risk(site, public_url=public_url)
    src = f"{public_url.rstrip('/')}/sdk/{site.id}/risk.js"
    return f'<script defer src="{src}" integrity="{script.integrity}" crossorigin="anonymous"></script>'


@functools.cache
def _forms_source() -> str:
    program = es5((resources.files("sdk_js") / "forms.js").read_text())
    return str(minify_print(program, obfuscate=True, obfuscate_globals=False)).rstrip(";\n ")


@functools.lru_cache(maxsize=256)
def _render_forms(config_json: bytes) -> Script:
    return _script(_template().render(script=_forms_source(), config=config_json.decode()).strip().encode())


def render_forms(site: Site, *, public_url: str) -> Script:
    """The forms add-on (docs/snippet.md, "The forms add-on"): like the risk script, it knows only
    where to fetch the site's hints, so its SRI hash does not change with the steps."""
    config = orjson.dumps({"site": site.id, "url": public_url.rstrip("/")}, option=orjson.OPT_SORT_KEYS)
    return _render_forms(config)


def forms_tag(site: Site, *, public_url: str) -> str:
    script = render_forms(site, public_url=public_url)
    src = f"{public_url.rstrip('/')}/sdk/{site.id}/forms.js"
    return f'<script defer src="{src}" integrity="{script.integrity}" crossorigin="anonymous"></script>'


@functools.cache
def _shopify_source() -> str:
    return (resources.files("sdk_js") / "shopify.js").read_text().strip()


def shopify_pixel(site: Site, *, public_url: str) -> str:
    """The custom pixel for Shopify's Customer Events: readable (it is pasted, not served), not size-bound."""
    source = _shopify_source()
    config = orjson.dumps(site_config(site, public_url=public_url), option=orjson.OPT_SORT_KEYS).decode()
    return _template().render(script=source, config=config).strip() + "\n"


def snippet_tag(site: Site, *, public_url: str) -> str:
    """What a store pastes into its pages: the script tag with its SRI hash, and the queue stub;
    with [sites.intervene], the risk script's tag for the pages of those steps."""
    script = render(site, public_url=public_url)
    src = script_url(site, public_url=public_url)  # "&" needs no escaping here: no character reference follows
    tag = (f'<script defer src="{src}" integrity="{script.integrity}" crossorigin="anonymous"></script>\n'
           f"<script>{STUB}</script>")
    if site.intervene.steps:
        tag += (f"\n<!-- after it, on the pages of {', '.join(site.intervene.steps)} (docs/interventions.md) -->\n"
                + risk_tag(site, public_url=public_url))
    if site.forms.steps:
        where = 'docs/snippet.md, "The forms add-on"'
        tag += (f"\n<!-- after it, on the pages of {', '.join(site.forms.steps)} ({where}) -->\n"
                + forms_tag(site, public_url=public_url))
    return tag
