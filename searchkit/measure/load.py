"""Load tests of a running server: many clients, bounded in count and time, and their latency percentiles."""

from __future__ import annotations

import re
import time

import numpy as np

from searchkit.measure.bench import Timer, percentiles
from searchkit.validation import check_positive_int

_SERVER_TOTAL = re.compile(rb'"total":\s*([0-9.]+)')


def load_test(
    url: str, queries: list[str], clients: int = 1, top_k: int = 10, path: str = "/search", extra: dict | None = None
) -> dict:
    """POST each query once from ``clients`` threads (one keep-alive connection each); ``extra`` joins each body.

    Return ``{"lat_ms": (n,) array, "wall_s", "rps", "errors", "cached", "p50", "p95", "p99", "server_p50",
    "server_p99", "bytes"}``: latency as the client sees it, in ms (``server_*``: the app's own
    ``timings_ms.total``); ``errors`` counts non-200 answers and failed connections; ``bytes``: mean body size.
    """
    import http.client
    import json
    import threading
    from urllib.parse import urlsplit

    check_positive_int("clients", clients)
    parts = urlsplit(url)
    lat = np.zeros(len(queries))
    server_ms = np.full(len(queries), np.nan)
    ok = np.zeros(len(queries), dtype=bool)
    cached = np.zeros(len(queries), dtype=bool)
    size = np.zeros(len(queries))
    todo = iter(range(len(queries)))
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        while (i := next_index()) is not None:
            body = json.dumps({"query": queries[i], "top_k": top_k, **(extra or {})})
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                ok[i], cached[i], size[i] = resp.status == 200, b'"cached":true' in data, len(data)
                if m := _SERVER_TOTAL.search(data):
                    server_ms[i] = float(m.group(1))
            except (OSError, http.client.HTTPException):
                conn.close()  # http.client reconnects on the next request
            lat[i] = (time.perf_counter() - t0) * 1000
        conn.close()

    def next_index() -> int | None:
        with lock:
            return next(todo, None)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    with Timer() as wall:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    p = percentiles(lat) if len(lat) else {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    srv = server_ms[np.isfinite(server_ms)]
    s = percentiles(srv, (50, 99)) if len(srv) else {"p50": float("nan"), "p99": float("nan")}
    return {"lat_ms": lat, "wall_s": wall.s, "rps": len(queries) / wall.s if wall.s else 0.0,
            "errors": int((~ok).sum()), "cached": int(cached.sum()), **p,
            "server_p50": s["p50"], "server_p99": s["p99"], "bytes": float(size.mean()) if len(size) else 0.0}  # fmt: skip
