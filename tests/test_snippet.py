"""The generated snippet: size budget, SRI tag, and how the collector serves it."""

from __future__ import annotations

import base64
import gzip
import hashlib
from typing import Any

from chainlens.core.loading import from_mapping
from collector.app import SERVER_OPTIONS, create_app
from sdk_js.render import STUB, render, snippet_tag
from tests.conftest import make_config, site_config

SIZE_BUDGET = 2048  # bytes, gzip -9 (issue: under Umami's 2,230 B, with batching, retry and a checkout model)


def test_served_script_fits_the_size_budget(tmp_path: Any) -> None:
    # A realistic site: the full chain and a URL rule for every step.
    site = from_mapping(make_config(tmp_path, sites=[site_config(step_urls={
        "discover": ["/"], "search": ["/search*"], "select": ["/product/*", "/p/*"], "cart": ["/cart"],
        "checkout.info": ["/checkout/info"], "checkout.shipping": ["/checkout/shipping"],
        "checkout.payment": ["/checkout/payment"], "checkout.review": ["/checkout/review"]})])).sites[0]
    script = render(site, public_url="https://collect.shop.example")
    size = len(gzip.compress(script.body, compresslevel=9))
    print(f"snippet: {len(script.body)} B minified, {size} B gzip -9")
    assert size <= SIZE_BUDGET


def test_snippet_tag_has_the_sri_hash_of_what_is_served(settings: Any) -> None:
    site = settings.sites[0]
    tag = snippet_tag(site, public_url="http://127.0.0.1:8787")
    digest = base64.b64encode(hashlib.sha384(render(site, public_url="http://127.0.0.1:8787").body).digest())
    assert f'integrity="sha384-{digest.decode()}"' in tag
    src = "http://127.0.0.1:8787/sdk/demo.js?consent=0&cookieless=0&session_min=30"  # the switches it was made with
    assert f'<script defer src="{src}"' in tag and 'crossorigin="anonymous"' in tag
    assert STUB in tag


def test_thirty_url_rules_cost_the_script_nothing_and_leave_its_sri_hash_alone(tmp_path: Any) -> None:
    plain = from_mapping(make_config(tmp_path, sites=[site_config(step_urls={})])).sites[0]
    rules = {"select": [f"/product/{i}/*" for i in range(20)], "cart": [f"/basket/{i}" for i in range(10)]}
    busy = from_mapping(make_config(tmp_path, sites=[site_config(step_urls=rules)])).sites[0]
    url = "https://collect.shop.example"
    assert len(gzip.compress(render(busy, public_url=url).body, compresslevel=9)) <= SIZE_BUDGET
    assert render(busy, public_url=url).integrity == render(plain, public_url=url).integrity
    assert snippet_tag(busy, public_url=url) == snippet_tag(plain, public_url=url)


def test_url_rules_and_the_event_map_are_applied_by_the_collector(tmp_path: Any) -> None:
    site = from_mapping(make_config(tmp_path, sites=[site_config(
        step_urls={"select": ["/product/*"], "cart": ["/a.b/*"]},
        events={"coupon_applied": "checkout.review"})])).sites[0]
    assert site.step_for_url("https://s.example/product/42") == "select"
    assert site.step_for_url("https://s.example/a.b/x") == "cart" and site.step_for_url("https://s.example/aXb/x") == ""
    assert site.event_steps["add_shipping_info"] == "checkout.shipping"
    assert site.event_steps["purchase"] == site.event_steps["checkout_completed"] == "purchase"
    assert site.event_steps["coupon_applied"] == "checkout.review"


async def test_collector_serves_the_script_with_etag_gzip_and_cors(aiohttp_client: Any, settings: Any) -> None:
    client = await aiohttp_client(create_app(settings), server_kwargs=SERVER_OPTIONS)
    first = await client.get("/sdk/demo.js", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert first.status == 200
    assert first.headers["Content-Encoding"] == "gzip"
    assert first.headers["Access-Control-Allow-Origin"] == "*"
    assert "max-age" in first.headers["Cache-Control"]
    body = gzip.decompress(await first.read())
    assert body == render(settings.sites[0], public_url=settings.collector.url()).body
    again = await client.get("/sdk/demo.js", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status == 304
    missing = await client.get("/sdk/nope.js")
    assert missing.status == 404 and "unknown site" in (await missing.json())["error"]
    # A tag names the switches it was made with: that script is served whatever the settings say now.
    site = settings.sites[0]
    earlier = await client.get("/sdk/demo.js?consent=1&cookieless=0&session_min=45")
    made = render(site, public_url=settings.collector.url(), given={"consent": 1, "cookieless": 0, "session_min": 45})
    assert await earlier.read() == made.body and made.body != body
    bad = await client.get("/sdk/demo.js?consent=2&cookieless=0&session_min=45")
    assert bad.status == 400 and (await bad.json())["code"] == "bad_envelope"


def test_snippet_command_prints_the_tag(tmp_path: Any) -> None:
    import subprocess
    import sys

    from tests.conftest import write_toml
    path = write_toml(tmp_path / "c.toml", make_config(tmp_path, collector={"public_url": "https://c.example"}))
    out = subprocess.run([sys.executable, "-m", "chainlens.cli", "snippet", "demo", "-c", str(path)],
                         capture_output=True, text=True, check=True).stdout
    assert 'src="https://c.example/sdk/demo.js?' in out and "chainlens.q" in out
    bad = subprocess.run([sys.executable, "-m", "chainlens.cli", "snippet", "nope", "-c", str(path)],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown site 'nope'" in bad.stderr
