"""The real `chainlens serve` process: hand-off to `sql`/`import`, clean stop."""

from __future__ import annotations

import base64
import hashlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from chainlens.core.loading import from_mapping
from chainlens.core.owner import Ownership, lock_paths
from tests.conftest import BROWSER_UA, ORIGIN, beacon, event, make_config, site_config, write_toml
from tests.test_snippet_browser import Pages

pytestmark = pytest.mark.slow


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url + "/e", data=body, method="POST", headers={
        "Content-Type": "text/plain", "Origin": ORIGIN, "User-Agent": BROWSER_UA, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, orjson.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def wait_count(srv: Any, query: str, expected: int, timeout: float = 20) -> int:
    deadline = time.monotonic() + timeout
    while True:
        n = int(srv.sql(query)[0]["n"])
        if n == expected or time.monotonic() > deadline:
            return n
        time.sleep(0.2)


def jsonl(path: Path, lines: list[Any]) -> Path:
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else orjson.dumps(x) for x in lines) + b"\n")
    return path


def test_sql_and_import_work_while_serve_owns_the_store(serve_factory: Any, tmp_path: Path) -> None:
    srv = serve_factory()
    status, body = post(srv.url, beacon(*[event(step="cart", sid=f"s{i}") for i in range(5)]))
    assert (status, body["accepted"]) == (202, 5)
    assert wait_count(srv, "SELECT count() AS n FROM events", 5) == 5

    old = event(step="purchase", ts=1_600_000_000_000, sid="imported")  # years old: imports have no age limit
    path = jsonl(tmp_path / "events.jsonl", [old, b'{"broken', event(step="nowhere"), event(step="cart")])
    result = srv.cli("import", str(path), "--site", "demo", check=False)
    assert result.returncode == 3
    assert "imported 2 events" in result.stdout and "rejected 2" in result.stdout
    assert f"{path}:2: rejected: not valid JSON" in result.stderr
    assert f"{path}:3: rejected: step: 'nowhere' is not a step" in result.stderr
    assert wait_count(srv, "SELECT count() AS n FROM events", 7) == 7
    rejected = srv.sql("SELECT reason FROM events_rejected WHERE source = 'import' ORDER BY reason")
    assert [r["reason"][:7] for r in rejected] == ["line 2:", "line 3:"]

    refused = srv.cli("sql", "DROP TABLE events", check=False)
    assert refused.returncode == 1 and "read-only" in refused.stderr
    pretty = srv.cli("sql", "SELECT count() AS n FROM events").stdout
    assert "n" in pretty and "7" in pretty  # the readable default format
    assert srv.stop() == 0


def test_clean_stop_flushes_everything_accepted(serve_factory: Any) -> None:
    srv = serve_factory()
    accepted = 0
    for i in range(40):
        status, body = post(srv.url, beacon(*[event(step="cart", sid=f"s{i}-{j}") for j in range(25)]))
        assert status == 202
        accepted += body["accepted"]
    assert srv.stop() == 0  # SIGTERM right after the last ack
    assert int(srv.sql("SELECT count() AS n FROM events")[0]["n"]) == accepted


def test_sql_and_import_work_on_the_directory_without_a_service(tmp_path: Path, serve_factory: Any) -> None:
    srv = serve_factory(make_config(tmp_path), start=False)
    path = jsonl(tmp_path / "e.jsonl", [event(step="cart"), event(step="checkout.info")])
    result = srv.cli("import", str(path), "--site", "demo")
    assert "imported 2 events" in result.stdout
    assert int(srv.sql("SELECT count() AS n FROM events")[0]["n"]) == 2
    tsv = srv.cli("sql", "SELECT step FROM events ORDER BY step", "--format", "TSVWithNames").stdout
    assert tsv.splitlines() == ["step", "cart", "checkout.info"]


def test_rollups_run_on_schedule_inside_serve_and_on_demand(serve_factory: Any, tmp_path: Path) -> None:
    srv = serve_factory(make_config(tmp_path, collector={"workers": 1}, rollup={"every_s": 1}))
    two_hours_ago = int(time.time() * 1000) - 2 * 3600 * 1000
    events = [event("page", step=s, sid="closed", ts=two_hours_ago + i * 60_000)
              for i, s in enumerate(["cart", "checkout.info", "purchase"])]
    assert post(srv.url, beacon(*events))[0] == 202
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if srv.sql("SELECT count() AS n FROM chain_sessions")[0]["n"] in (1, "1"):
            break
        time.sleep(0.3)
    row = srv.sql("SELECT session_id, purchased FROM chain_sessions")[0]
    assert row == {"session_id": "closed", "purchased": True}
    out = srv.cli("rollup").stdout  # through the running service's admin API
    assert out.startswith("demo: ") and "sessions" in out
    assert srv.stop() == 0
    direct = srv.cli("rollup", "--since", "2020-01-01").stdout  # the directory, no service
    assert "(1 days), 1 sessions" in direct  # a long range costs only the days that hold data


def test_serve_gives_up_when_its_port_is_taken(serve_factory: Any, tmp_path: Path) -> None:
    import socket
    srv = serve_factory(make_config(tmp_path, collector={"workers": 1}), start=False)
    with socket.socket() as taken:  # a listener without SO_REUSEPORT holds the port
        taken.bind(("127.0.0.1", srv.port))
        taken.listen()
        result = srv.cli("serve", check=False)
    assert result.returncode == 1
    assert "port in use" in result.stderr


def test_a_reload_that_changes_the_script_keeps_every_pasted_tag_working(serve_factory: Any, tmp_path: Path) -> None:
    config = make_config(tmp_path, collector={"workers": 1})
    srv = serve_factory(config)
    old_tag = srv.cli("snippet", "demo").stdout
    src, integrity = (old_tag.split(f'{k}="', 1)[1].split('"', 1)[0] for k in ("src", "integrity"))
    config["sites"][0]["session_minutes"] = 45
    write_toml(srv.path, config)
    said = srv.cli("reload").stdout
    assert "site demo: the script's settings changed (session_min 30 → 45)" in said
    assert "pages keep working with the tag they carry" in said
    new_tag = srv.cli("snippet", "demo").stdout
    assert new_tag != old_tag and "session_min=45" in new_tag
    for tag_src, tag_integrity in ((src, integrity), (new_tag.split('src="', 1)[1].split('"', 1)[0],
                                                      new_tag.split('integrity="', 1)[1].split('"', 1)[0])):
        body = urllib.request.urlopen(tag_src, timeout=10).read()  # what a browser checks against the tag
        assert "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode() == tag_integrity
    # A file that does not load: the reload says so, /readyz shows it, status still shows the live state.
    srv.path.write_text(srv.path.read_text().replace("[collector]", "[collector]\nprot = 1", 1))
    failed = srv.cli("reload", check=False)  # the command reads the file first, and says so
    assert failed.returncode == 2 and "collector.prot: unknown key" in failed.stderr
    os.kill(srv.proc.pid, signal.SIGHUP)  # as a service manager's reload would
    deadline = time.monotonic() + 20
    while "collector.prot: unknown key" not in (ready := orjson.loads(
            urllib.request.urlopen(srv.url + "/readyz", timeout=10).read()))["config_error"]:
        assert time.monotonic() < deadline, ready
        time.sleep(0.2)
    assert ready["ready"] is True  # it serves on, on the settings it had
    status = srv.cli("status", check=False)
    assert status.returncode == 2 and "config error" in status.stderr
    assert "the running collector's live state" in status.stdout and "site demo:" in status.stdout
    assert srv.stop() == 0


def test_changing_step_urls_keeps_the_tag_and_remaps_new_page_views(serve_factory: Any, tmp_path: Path) -> None:
    config = make_config(tmp_path, collector={"workers": 1}, sites=[site_config(step_urls={"cart": ["/cart"]})])
    srv = serve_factory(config)
    tag = srv.cli("snippet", "demo").stdout
    served = urllib.request.urlopen(srv.url + "/sdk/demo.js", timeout=10).read()
    before = event("page", url="https://shop.example/basket", step="")
    assert post(srv.url, beacon(before))[0] == 202
    assert srv.stop() == 0

    # The store moves its cart page: a new rule, a restart, no new tag to paste.
    config["sites"][0]["step_urls"] = {"cart": ["/basket"], "checkout.info": ["/checkout/*"]}
    write_toml(srv.path, config)
    srv.start()
    assert srv.cli("snippet", "demo").stdout == tag
    assert urllib.request.urlopen(srv.url + "/sdk/demo.js", timeout=10).read() == served
    after = event("page", url="https://shop.example/basket", step="")
    assert post(srv.url, beacon(after))[0] == 202
    query = "SELECT count() AS n FROM events WHERE url LIKE '%/basket'"
    assert wait_count(srv, query, 2) == 2
    got = {r["id"]: r["step"] for r in srv.sql(
        "SELECT toString(event_id) AS id, step FROM events WHERE url LIKE '%/basket'")}
    assert got == {before["id"]: "", after["id"]: "cart"}  # what was stored stays as it was


def test_one_owner_per_spool_and_store(serve_factory: Any, tmp_path: Path) -> None:
    srv = serve_factory()
    assert srv.proc is not None
    # The same config, and another port and spool on the same embedded store: both refused at once.
    other = make_config(tmp_path / "other", collector={"workers": 1})
    other["store"] = srv.config["store"]
    other_path = write_toml(tmp_path / "other.toml", other)
    # Another spool and store on the same port: without the port's lock it would take part of the traffic.
    elsewhere = make_config(tmp_path / "elsewhere", collector={"workers": 1, "port": srv.config["collector"]["port"]})
    elsewhere_path = write_toml(tmp_path / "elsewhere.toml", elsewhere)
    for path in (srv.path, other_path, elsewhere_path):
        second = subprocess.run([sys.executable, "-m", "chainlens.cli", "serve", "-c", str(path)],
                                cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2, second.stderr
        (line,) = second.stderr.strip().splitlines()  # one line, naming the running instance
        assert f"(pid {srv.proc.pid})" in line
        if path == elsewhere_path:
            assert f"listens on port {srv.config['collector']['port']}" in line
    assert srv.sql("SELECT 1 AS one") == [{"one": 1}]  # the first one serves on
    assert srv.stop() == 0


def test_commands_name_an_owner_that_does_not_answer(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    path = write_toml(tmp_path / "chainlens.toml", config)
    held = Ownership(lock_paths(from_mapping(config))).acquire()  # a serve whose store process is not up
    try:
        result = subprocess.run([sys.executable, "-m", "chainlens.cli", "sql", "SELECT 1", "-c", str(path)],
                                cwd=tmp_path, capture_output=True, text=True, timeout=60)
    finally:
        held.release()
    assert result.returncode == 1
    assert f"chainlens serve (pid {os.getpid()}) owns" in result.stderr and "not up" in result.stderr


def test_a_reload_fixes_a_wrong_origin_without_a_restart(serve_factory: Any, tmp_path: Path) -> None:
    config = make_config(tmp_path, collector={"workers": 2}, sites=[site_config(origins=["https://typo.example"])])
    srv = serve_factory(config)
    assert srv.proc is not None
    pid = srv.proc.pid
    assert post(srv.url, beacon(event(step="cart")))[0] == 403
    tag = srv.cli("snippet", "demo").stdout
    # The operator sees why, with the fix: in `chainlens status`, on the dashboard, in the log.
    fix = f"origin {ORIGIN} is not in sites.origins of site demo: add it to {srv.path}"
    deadline = time.monotonic() + 20
    while fix not in (status := srv.cli("status").stdout):
        assert time.monotonic() < deadline, status
        time.sleep(0.3)
    assert "REFUSED 1× " in status and "events received: 0 in the last 5 min" in status
    with urllib.request.urlopen(srv.url + "/dashboard", timeout=30) as page:
        html = page.read().decode()
    assert 'id="live"' in html and fix in html.replace("&#39;", "'")
    assert "beacons refused" in srv.log.read_text() and "is not allowed for site" in srv.log.read_text()

    # A broken file: refused, the running settings stay, the log names file, key and reason.
    srv.path.write_text(srv.path.read_text().replace("[[sites]]", "[[sites]]\nnot_a_key = 1", 1))
    srv.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "settings not reloaded" not in srv.log.read_text():
        assert time.monotonic() < deadline, srv.log.read_text()[-2000:]
        time.sleep(0.1)
    assert f"{srv.path}: sites[0].not_a_key: unknown key" in srv.log.read_text()
    assert post(srv.url, beacon(event(step="cart")))[0] == 403

    # The fix, and a session_minutes change that changes the served script.
    config["sites"][0]["origins"] = [ORIGIN]
    config["sites"][0]["session_minutes"] = 45
    write_toml(srv.path, config)
    before = srv.cli("snippet", "demo")
    assert before.stdout == tag and "chainlens reload" in before.stderr  # what runs, not the file
    assert "runs with" in srv.cli("reload").stdout
    # Every worker reads the file on the signal; the port is shared, so try a few connections.
    deadline = time.monotonic() + 10
    while True:
        answers = {post(srv.url, beacon(event(step="cart")))[0] for _ in range(8)}
        if answers == {202}:
            break
        assert time.monotonic() < deadline, answers
        time.sleep(0.2)
    after = srv.cli("snippet", "demo")
    assert after.stdout != tag and after.stderr == ""
    assert srv.proc.pid == pid and srv.proc.poll() is None  # no restart
    assert srv.stop() == 0


def test_check_finds_the_tag_its_hash_and_the_data(serve_factory: Any, tmp_path: Path) -> None:
    pages, elsewhere = Pages(), Pages()
    srv = serve_factory(make_config(tmp_path, collector={"workers": 1},
                                    sites=[site_config(origins=[ORIGIN, pages.origin])]))
    tag = srv.cli("snippet", "demo").stdout
    stale = tag.replace('integrity="sha384-', 'integrity="sha384-AAAA', 1)
    pages.routes["/good"] = (f"<html><head>{tag}</head><body>shop</body></html>", {})
    pages.routes["/stale"] = (f"<html><head>{stale}</head><body>shop</body></html>", {})
    pages.routes["/bare"] = ("<html><head></head><body>shop</body></html>", {})
    try:
        none_yet = srv.cli("check", "demo", pages.origin + "/good", check=False)
        assert none_yet.returncode == 1
        assert "ok    the tag loads" in none_yet.stdout and "ok    its SRI hash matches" in none_yet.stdout
        assert "FAIL  no events from site demo in the last 30 minutes" in none_yet.stdout
        assert post(srv.url, beacon(event(step="cart")))[0] == 202
        deadline = time.monotonic() + 20
        while (good := srv.cli("check", "demo", pages.origin + "/good", check=False)).returncode != 0:
            assert time.monotonic() < deadline, good.stdout
            time.sleep(0.3)
        assert "FAIL" not in good.stdout and "1 events from site demo" in good.stdout
        stale_check = srv.cli("check", "demo", pages.origin + "/stale", check=False)
        assert stale_check.returncode == 1 and "browsers refuse the script" in stale_check.stdout
        bare = srv.cli("check", "demo", pages.origin + "/bare", check=False)
        assert bare.returncode == 1 and "FAIL  no <script" in bare.stdout
        # A page on an origin the site refuses fails, whatever the other pages send.
        elsewhere.routes["/good"] = pages.routes["/good"]
        assert post(srv.url, beacon(event(step="cart")), {"Origin": elsewhere.origin})[0] == 403
        deadline = time.monotonic() + 20
        while f"FAIL  1 beacons from {elsewhere.origin} refused" not in (
                refused := srv.cli("check", "demo", elsewhere.origin + "/good", check=False)).stdout:
            assert time.monotonic() < deadline, refused.stdout
            time.sleep(0.3)
        assert refused.returncode == 1
        assert f"FAIL  the page's origin {elsewhere.origin} is not in sites.origins" in refused.stdout
    finally:
        for server in (pages, elsewhere):
            server.server.shutdown()
            server.server.server_close()
    assert srv.stop() == 0
