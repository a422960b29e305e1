"""Serving surfaces through the real server: request heads bounded in uvicorn's httptools parser, the docs' CSP."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import time

import httpx
import psutil
import pytest

from searchkit.serving.cache import LRUCache
from searchkit.serving.server import MAX_HEAD_BYTES, MAX_HEADER_BYTES, MAX_HEADERS, MAX_URL_BYTES, serve_in_background

pytestmark = pytest.mark.usefixtures("one_compute_thread")


@pytest.fixture(scope="module")
def server(small_engine):
    """The app behind a real uvicorn on loopback."""
    srv = serve_in_background(small_engine, cache=LRUCache(100))
    yield srv
    srv.stop()


def raw(port: int, data: bytes, timeout: float = 30.0) -> tuple[int, dict | bytes]:
    """Send ``data`` on a fresh connection; return the status and the JSON body (or the raw bytes if not JSON)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except OSError:  # the server refused the head and stopped reading: its answer is still there
            pass
        out = b""
        while b"\r\n\r\n" not in out or len(out.split(b"\r\n\r\n", 1)[1]) < _length(out):
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
    head, _, body = out.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body


def _length(out: bytes) -> int:
    for line in out.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 1 << 30


def get(target: bytes, headers: bytes = b"") -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + headers + b"\r\n"


CASES = [  # (request, status, start of the JSON detail)
    (get(b"/health", b"X-Big: " + b"a" * (16 << 20) + b"\r\n"), 431, f"the request head is over {MAX_HEAD_BYTES} bytes"),
    (get(b"/search?q=" + b"x" * 100_000), 414, f"the URL is over {MAX_URL_BYTES} bytes"),
    (get(b"/health", b"".join(b"X-%d: 1\r\n" % i for i in range(1000))), 431, f"the request has over {MAX_HEADERS}"),
    (get(b"/health", b"X-Big: " + b"a" * 20_000 + b"\r\n"), 431, f"a header line is over {MAX_HEADER_BYTES} bytes"),
    (b"HELLO\x00 there\r\n\r\n", 400, "the request is not valid HTTP/1.1"),
]


@pytest.mark.parametrize("request_bytes, status, detail", CASES, ids=["16MB-header", "100k-url", "1000-headers",
                                                                      "20KB-header-line", "not-http"])  # fmt: skip
def test_oversized_heads_get_a_json_4xx(server, request_bytes, status, detail):
    got, body = raw(server.port, request_bytes)
    assert got == status, body
    assert isinstance(body, dict) and body["detail"].startswith(detail), body


def test_heads_within_the_bounds_are_served(server):
    q = "删除目录" * 500  # 2,000 CJK characters: 18 KB percent-encoded
    r = httpx.get(f"{server.url}/search", params={"q": q, "mode": "bm25"}, headers={"X-Fill": "a" * 8000}, timeout=60)
    assert r.status_code == 200, r.text
    status, body = raw(server.port, get(b"/health", b"".join(b"X-%d: 1\r\n" % i for i in range(MAX_HEADERS - 1))))
    assert status == 200 and body["ready"] is True


def test_eight_unfinished_large_heads_cost_no_memory_and_block_no_one(server):
    chunk, mb = b"a" * 65536, 16
    socks: list[socket.socket] = []
    proc = psutil.Process()
    before = proc.memory_info().rss

    def hold() -> None:
        s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        socks.append(s)
        try:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
            for _ in range(mb * 16):  # 16 MB of one header value, never finished
                s.sendall(chunk)
        except OSError:  # refused: the server closed the connection
            pass

    threads = [threading.Thread(target=hold) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        grown = (proc.memory_info().rss - before) / 2**20
        t0 = time.monotonic()
        with httpx.Client(base_url=server.url, timeout=60) as c:
            assert c.get("/health").status_code == 200
            assert c.post("/search", json={"query": "delete a folder", "top_k": 2}).status_code == 200
        assert time.monotonic() - t0 < 30
    finally:
        for s in socks:
            s.close()
    assert grown < 32, f"8 unfinished 16 MB heads grew the server by {grown:.0f} MiB"  # unbounded: over 128 MiB


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_api_docs_carry_a_csp_that_forbids_framing(server, path):
    r = httpx.get(f"{server.url}{path}", timeout=60)
    csp = r.headers["content-security-policy"]
    assert r.status_code == 200 and "frame-ancestors 'none'" in csp and r.headers["x-frame-options"] == "DENY", csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    for script in re.findall(r"<script>(.*?)</script>", r.text, flags=re.S):  # each inline script is allowed by hash
        assert "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'" in csp
