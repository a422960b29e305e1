"""The request-head bounds' cost on the fast path: uvicorn's plain httptools protocol beside ``BoundedHttpTools``.

Starts both on loopback in this process (a one-route app, so only the HTTP layer is timed), then sends ``--n``
sequential keep-alive ``GET /health`` requests with eight headers to each, alternating, and prints p50 and p99
(the first 200 of each are warm-up).

    PYTHONPATH=. python benchmarks/head_bounds.py            # 3,000 requests each
    PYTHONPATH=. python benchmarks/head_bounds.py --same     # the same protocol twice: the noise
"""

from __future__ import annotations

import argparse
import socket
import threading
import time

import uvicorn
from fastapi import FastAPI

from searchkit.measure.bench import percentiles
from searchkit.serving.server import CONNECTION_LIMITS, free_port

REQUEST = (b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: bench\r\nAccept: */*\r\nAccept-Encoding: gzip\r\n"
           b"Accept-Language: en\r\nX-A: 1\r\nX-B: 2\r\n\r\n")  # fmt: skip


def _start(app: FastAPI, http) -> int:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", **{**CONNECTION_LIMITS, "http": http})
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return port


def main() -> None:
    """Print p50 and p99 of sequential requests through each protocol."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=3000, help="requests per protocol (default: 3000)")
    ap.add_argument("--bounded-first", action="store_true", help="time BoundedHttpTools first in each round")
    ap.add_argument("--same", action="store_true", help="two plain httptools servers: the noise of this measurement")
    args = ap.parse_args()
    n = args.n
    app = FastAPI()
    app.get("/health")(lambda: {"ok": True})
    second = ("httptools (2)", "httptools") if args.same else ("BoundedHttpTools", CONNECTION_LIMITS["http"])
    protocols = dict([("httptools", "httptools"), second])
    if args.bounded_first:
        protocols = dict(reversed(list(protocols.items())))
    socks = {k: socket.create_connection(("127.0.0.1", _start(app, http))) for k, http in protocols.items()}
    times: dict[str, list[float]] = {k: [] for k in socks}
    for _ in range(n):
        for k, s in socks.items():
            t0 = time.perf_counter()
            s.sendall(REQUEST)
            out = b""
            while not out.endswith(b"}"):
                out += s.recv(4096)
            times[k].append((time.perf_counter() - t0) * 1000)
    for k, v in times.items():
        p = percentiles(v[200:])
        print(f"{k:17s} n={len(v) - 200}  p50 {p['p50']:.3f} ms  p99 {p['p99']:.3f} ms")


if __name__ == "__main__":
    main()
