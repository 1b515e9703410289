"""Settings: the normative keys, the resolution order, and clear errors (exit 2)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chainlens.core import loading as S


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chainlens.cli", *args], cwd=cwd, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", **(env or {})}, timeout=120)


def test_defaults_serve_a_demo_site_on_an_embedded_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = S.load(environ={})
    assert settings.store.dsn == "chdb://./data/chainlens"
    assert [s.id for s in settings.sites] == ["demo"]
    assert settings.sites[0].checkout_steps == ("cart", "checkout.info", "checkout.shipping", "checkout.payment",
                                                "checkout.review")


def test_file_env_and_dsn_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "custom.toml"
    path.write_text('[collector]\nport = 9999\nworkers = 3\n[[sites]]\nid = "shop"\n'
                    '[sites.step_urls]\ncart = ["/basket"]\n[sites.alerts]\nwebhook = "http://127.0.0.1:1/x"\n')
    settings = S.load(environ={"CHAINLENS_CONFIG": str(path), "CHAINLENS_DSN": "http://default:@127.0.0.1:8123/x"})
    assert settings.collector.port == 9999 and settings.collector.workers == 3
    assert settings.store.dsn == "http://default:@127.0.0.1:8123/x"
    assert settings.site("shop").step_urls == {"cart": ("/basket",)}
    assert settings.site("shop").alerts.webhook == "http://127.0.0.1:1/x"
    (tmp_path / "chainlens.toml").write_text('[collector]\nport = 1234\n')
    assert S.load(environ={}).collector.port == 1234  # ./chainlens.toml when nothing else is named
    assert S.load(str(path), environ={"CHAINLENS_CONFIG": "nope.toml"}).collector.port == 9999  # -c wins


@pytest.mark.parametrize(("toml", "key", "reason"), [
    ("[collector]\nprot = 1\n", "collector.prot", "unknown key"),
    ("[collector]\nport = \"80\"\n", "collector.port", "expected an integer"),
    ("[[sites]]\nid = \"a\"\n[[sites]]\nid = \"a\"\n", "sites[1].id", "duplicate site id 'a'"),
    ("[[sites]]\nid = \"a\"\nchain = [\"x\", \"y\"]\n", "sites[0].checkout_from", "missing"),
    ("[[sites]]\nid = \"a\"\nchain = [\"x\", \"y\"]\ncheckout_from = \"y\"\n", "sites[0].checkout_from",
     "not a chain step before the last"),
    ("[[sites]]\nid = \"a\"\ntimezone = \"Mars/Olympus\"\n", "sites[0].timezone", "unknown time zone"),
    ("[[sites]]\nid = \"a\"\n[sites.step_urls]\nwarp = [\"/w\"]\n", "sites[0].step_urls.warp", "not a step"),
    ("[store\n", "-", "not valid TOML"),
    ("[[sites]]\nid = \"a\"\n[[sites.segments]]\nname = \"vip\"\nwhere = \"cart_valu >= 100\"\n",
     "sites[0].segments[0].where", "segment 'vip': unknown column 'cart_valu'"),
    ("[[sites]]\nid = \"a\"\n[[sites.segments]]\nname = \"vip\"\nwhere = \"(revenue > 1\"\n",
     "sites[0].segments[0].where", "segment 'vip': unbalanced parentheses"),
    ("[[sites]]\nid = \"a\"\n[[sites.segments]]\nname = \"vip\"\nwhere = \"1; DROP TABLE events\"\n",
     "sites[0].segments[0].where", "segment 'vip': cannot read"),
    ("[[sites]]\nid = \"a\"\n[[sites.segments]]\nname = \"decisive\"\nwhere = \"revenue > 1\"\n",
     "sites[0].segments[0].name", "already defined"),
])
def test_bad_config_exits_2_naming_file_key_and_reason(tmp_path: Path, toml: str, key: str, reason: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(S.ConfigError) as err:
        S.load(str(path), environ={})
    assert err.value.key == key and reason in err.value.reason
    result = run_cli("sql", "SELECT 1", "-c", str(path), cwd=tmp_path)
    assert result.returncode == 2
    assert f"{path}: {key}: " in result.stderr and reason in result.stderr


def test_list_pages_are_browsing_and_searches_are_searches() -> None:
    site = S.from_mapping({"sites": [{"id": "a"}]}).sites[0]
    steps = site.event_steps
    assert steps["view_item_list"] == steps["collection_viewed"] == "discover"
    assert steps["view_search_results"] == steps["search"] == steps["search_submitted"] == "search"
    short = S.from_mapping({"sites": [{"id": "b", "chain": ["browse", "product", "cart", "pay", "done"],
                                     "checkout_from": "cart", "fast_track": {"step": "product"}}]}).sites[0]
    assert short.event_steps["view_item_list"] == "browse" and "search" not in short.event_steps
    remapped = S.from_mapping({"sites": [{"id": "c", "events": {"view_item_list": "search"}}]}).sites[0]
    assert remapped.event_steps["view_item_list"] == "search"
