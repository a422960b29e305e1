"""Slow and idle clients: what they cost everyone else, and which connections the server closes.

Starts ``python -m searchkit serve`` (Python docs), opens ``--each`` connections of three kinds and keeps them
slow for ``--seconds``: idle (connected, no bytes), slowloris (a request head sent one header line every 2 s,
never finished), partial body (``Content-Length: 100``, 10 bytes sent). Meanwhile one client times normal
requests (``GET /health`` and a cached ``POST /search``). At the end it counts how many slow connections the
server has closed.

    python benchmarks/slow_clients.py                  # 50 of each kind for 25 s
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from soak import running_server  # noqa: E402

from searchkit.measure.bench import percentiles  # noqa: E402
from searchkit.measure.load import load_test
from searchkit.measure.report import format_table  # noqa: E402
from searchkit.serving.server import free_port  # noqa: E402


def open_slow(port: int, kind: str) -> socket.socket:
    """Open one slow connection of ``kind`` and send its first bytes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    if kind == "slowloris":
        s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    elif kind == "partial body":
        s.sendall(b"POST /search HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n" + b'{"query":"')  # fmt: skip
    return s


def is_closed(s: socket.socket) -> bool:
    """True when the server has closed (or answered and closed) the connection."""
    s.setblocking(False)
    try:
        data = s.recv(65536)
        return data == b"" or b"HTTP/1.1 408" in data or b"HTTP/1.1 400" in data
    except BlockingIOError:
        return False
    except OSError:
        return True


def main() -> int:
    """Hold slow connections open while timing normal requests; print both tables."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--each", type=int, default=50, help="slow connections of each kind (default: 50)")
    p.add_argument("--seconds", type=float, default=25.0, help="how long to keep them slow (default: 25)")
    args = p.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running_server(port, "pydocs", threads=1):
        baseline = load_test(url, ["read a csv file"] * 100)
        kinds = ("idle", "slowloris", "partial body")
        conns = {k: [open_slow(port, k) for _ in range(args.each)] for k in kinds}
        stop = threading.Event()

        def trickle() -> None:  # slowloris: one more header line every 2 s, never the blank line
            i = 0
            while not stop.wait(2.0):
                for s in conns["slowloris"]:
                    try:
                        s.sendall(f"X-Slow-{i}: 1\r\n".encode())
                    except OSError:
                        pass
                i += 1

        threading.Thread(target=trickle, daemon=True).start()
        lat, t0 = [], time.monotonic()
        while time.monotonic() - t0 < args.seconds:
            lat.extend(load_test(url, ["read a csv file"] * 20)["lat_ms"].tolist())
            time.sleep(0.2)
        stop.set()
        during = percentiles(lat)
        rows = [{"normal requests": "before", "n": 100, "p50 ms": baseline["p50"], "p99 ms": baseline["p99"]},
                {"normal requests": f"with {3 * args.each} slow connections", "n": len(lat),
                 "p50 ms": during["p50"], "p99 ms": during["p99"]}]  # fmt: skip
        print(format_table(rows, digits=1))
        closed = [{"kind": k, "opened": args.each, f"closed by the server after {args.seconds:g} s":
                   sum(is_closed(s) for s in conns[k])} for k in kinds]  # fmt: skip
        print()
        print(format_table(closed))
        for group in conns.values():
            for s in group:
                s.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
