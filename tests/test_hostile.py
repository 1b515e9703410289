"""Hostile bytes: whatever a client sends, the collector answers 2xx or 4xx and keeps the reason.

Thousands of generated requests (random bytes, mutated valid beacons, text in
other encodings, truncated gzip, odd header values) go over raw sockets to the
real application (store service attached, embedded ClickHouse). Every answer is
below 500; every refusal has its `events_rejected` row, so the rows counted in
the store equal the refusals the answers named.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainlens.core.loading import from_mapping
from chainlens.one_process import single_process_app
from collector.app import SERVER_OPTIONS
from ingestion.runner import StoreRunner
from tests.conftest import BROWSER_UA, ORIGIN, beacon, event, free_port, make_config

pytestmark = pytest.mark.slow

EXAMPLES = 5000


class Collector:
    """The real app on a real port, in a thread with its own event loop."""

    def __init__(self, settings: Any) -> None:
        self.port = free_port()
        self.runner = StoreRunner(settings.store.dsn)
        self.app = single_process_app(settings, runner=self.runner)
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(60), "the collector did not start"

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.web_runner = web.AppRunner(self.app, access_log=None, **SERVER_OPTIONS)
        self.loop.run_until_complete(self.web_runner.setup())
        self.loop.run_until_complete(web.TCPSite(self.web_runner, "127.0.0.1", self.port).start())
        ready.set()
        self.loop.run_forever()

    def rows(self, query: str) -> list[tuple]:
        future = asyncio.run_coroutine_threadsafe(self.runner.call(lambda c: c.query(query).result_rows), self.loop)
        return list(future.result(60))

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.web_runner.cleanup(), self.loop).result(120)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        assert not self.thread.is_alive(), "the collector's loop did not stop"
        self.loop.close()


def send(port: int, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, bytes]:
    """One raw HTTP/1.1 request, header bytes exactly as given; (status, body)."""
    head = b"POST %s HTTP/1.1\r\nHost: collect.example\r\nConnection: close\r\nContent-Length: %d\r\n" % (
        path, len(body))
    head += b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(head + b"\r\n" + body)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split(b" ")[1]), rest.partition(b"\r\n\r\n")[2]


VALID = [beacon(event(step="cart", props={"items": 2})),
         beacon(event("page", url="https://shop.example/p/1", ref="https://search.example/"),
                event("track", name="purchase", value="59.90", currency="EUR", order_id=10432)),
         beacon(*[event(step="checkout.info") for _ in range(5)])]

# Things real clients and broken proxies do to JSON text.
SPLICES = [b"NaN", b"Infinity", b"-Infinity", b"1e999999", b"9" * 400, b"\x00", b"\x1f", b'"\\ud800"',
           b'"\x07bell"', b"\xff\xfe", b"\xef\xbb\xbf", b'"site":"demo",', b"{", b"}", b"[", b"]", b",", b":",
           b"\xc3\x28", b"\xe9", b'"events":null', b"true", b"null", b'"\\u0000"']


@st.composite
def bodies(draw: Any) -> tuple[bytes, bytes | None]:
    """(body, Content-Encoding or None)."""
    kind = draw(st.sampled_from(["random", "mutated", "mutated", "encoded", "gzip", "duplicate_keys"]))
    base = draw(st.sampled_from(VALID))
    if kind == "random":
        return draw(st.binary(max_size=400)), None
    if kind == "encoded":
        # The same text in another encoding: Latin-1, UTF-16 (with or without BOM), UTF-8 with BOM.
        text = base.decode().replace("cart", draw(st.sampled_from(["cart", "é", "💳", "\u2028"])))
        codec = draw(st.sampled_from(["latin-1", "utf-16", "utf-16-le", "utf-8-sig", "utf-32"]))
        return text.encode(codec, "replace"), None
    if kind == "gzip":
        packed = gzip.compress(base) if draw(st.booleans()) else zlib.compress(base)
        cut = draw(st.integers(0, len(packed)))
        return packed[:cut], draw(st.sampled_from([b"gzip", b"deflate", b"br", b"gzip, gzip", b"\xe9"]))
    if kind == "duplicate_keys":
        return base.replace(b'"site":"demo"', b'"site":"demo","site":' + draw(st.sampled_from(
            [b'"demo"', b'"other"', b"1", b"null"])), 1), None
    out = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(out)))
        op = draw(st.sampled_from(["splice", "flip", "cut", "drop"]))
        if op == "splice":
            out[at:at] = draw(st.sampled_from(SPLICES))
        elif op == "flip" and at < len(out):
            out[at] = draw(st.integers(0, 255))
        elif op == "cut":
            del out[at:]
        elif op == "drop" and at < len(out):
            del out[at:at + draw(st.integers(1, 20))]
    return bytes(out), None


header_value = st.one_of(
    st.sampled_from([b"text/plain", b"application/json", b"application/json; charset=utf-16",
                     b"text/plain;charset=latin-1",
                     b"multipart/form-data; boundary=x", b""]),
    # obs-text: bytes 0x80-0xFF are allowed in field values; a tab and printable ASCII too.
    st.binary(max_size=40).map(lambda b: bytes(c for c in b if c == 9 or 32 <= c <= 126 or c >= 128).strip()),
)


@st.composite
def requests(draw: Any) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
    body, encoding = draw(bodies())
    # Mostly what tags send, so the bodies reach the parser; sometimes anything.
    headers = [(b"Content-Type", draw(st.one_of(st.sampled_from([b"text/plain", b"text/plain;charset=UTF-8",
                                                                 b"application/json"]), header_value)))]
    if encoding is not None:
        headers.append((b"Content-Encoding", encoding))
    headers.append((b"Origin", draw(st.sampled_from([ORIGIN.encode(), ORIGIN.encode(), ORIGIN.encode(), b"null",
                                                     b"https://evil.example", b"http://b\xfccher.example", b""]))))
    headers.append((b"User-Agent", draw(st.one_of(st.just(BROWSER_UA.encode()), header_value))))
    if draw(st.integers(0, 9)) == 0:
        headers.append((b"Authorization", b"Bearer " + draw(header_value)))
    path = draw(st.sampled_from([b"/e", b"/e", b"/e", b"/s2s"]))
    return path, headers, body


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collector]:
    tmp = tmp_path_factory.mktemp("hostile")
    cfg = from_mapping(make_config(tmp, collector={"flush_interval_s": 0.2, "rate_limit_rps": 0.0}))
    app = Collector(cfg)
    yield app
    app.close()


def test_no_bytes_get_a_5xx_and_every_refusal_is_kept(collector: Collector) -> None:
    tally = {"requests": 0, "refused": 0, "kept_rejections": 0, "accepted": 0}
    statuses: dict[int, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(request=requests())
    def post(request: tuple[bytes, list[tuple[bytes, bytes]], bytes]) -> None:
        path, headers, body = request
        status, answer = send(collector.port, path, headers, body)
        tally["requests"] += 1
        statuses[status] = statuses.get(status, 0) + 1
        assert status < 500, (status, answer, request)
        reply = orjson.loads(answer)  # always a JSON body that names the outcome
        if status >= 400:
            assert reply["error"], reply
            tally["refused"] += 1
        else:
            tally["accepted"] += reply["accepted"]
            tally["kept_rejections"] += reply["rejected"] + len(reply.get("dropped", []))

    post()
    assert tally["requests"] >= EXAMPLES
    # The app still takes a valid beacon afterwards.
    ok = event(step="cart")
    status, _ = send(collector.port, b"/e", [(b"Content-Type", b"text/plain"), (b"Origin", ORIGIN.encode())],
                     beacon(ok))
    assert status == 202
    # Each refused request left one row, each refused or trimmed event one more.
    expected = tally["refused"] + tally["kept_rejections"]
    print(f"\n{tally['requests']} requests: answers {dict(sorted(statuses.items()))}; {expected} rejection rows")
    deadline = 60.0
    got = -1
    while deadline > 0:
        got = collector.rows("SELECT count() FROM events_rejected")[0][0]
        if got == expected and collector.rows(
                f"SELECT count() FROM events WHERE event_id = '{ok['id']}'")[0][0] == 1:
            break
        time.sleep(0.5)
        deadline -= 0.5
    assert got == expected, f"{got} events_rejected rows for {expected} refusals"
