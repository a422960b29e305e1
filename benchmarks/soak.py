"""Soak test: a long, bounded stream of requests on loopback; errors, p99 over time, and the server's memory.

    python benchmarks/soak.py                        # 100,000 requests (the full run)
    python benchmarks/soak.py --requests 10000       # a shorter run

The app runs as ``python -m searchkit serve`` in its own process (Python docs, Flat + BM25, in-process LRU
cache, one torch/faiss thread); C client threads (keep-alive connection each) send a seeded mix of requests:
dense, BM25 and hybrid modes; half repeat a pool of 500 queries (cache hits), half are new text (encoder
calls, new words for BM25); one in 50 is a bad request (expected 422) and one in 100 a ``GET /health``.
The run is cut into windows of equal request counts; each row gives that window's errors, latency
percentiles (ms, as the client sees them) and the server's resident memory (psutil) at its end. Memory growth is
measured from the end of the warm-up (the first window) to the largest value after it; the run fails
(exit status 1) on any error or a growth of 5% or more.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time

import numpy as np
import psutil

WORDS = (
    "read write delete copy move list open close parse format sort filter join split compress decompress "
    "encode decode hash encrypt sleep wait thread process socket file folder directory path json csv xml "
    "date time zone random number string bytes buffer queue stack lock event signal pipe url http email"
).split()
MODES = ("dense", "bm25", "hybrid")


def start_server(
    port: int, corpus: str, threads: int, cache_size: int | None = None, timeout_s: float = 300.0
) -> subprocess.Popen:  # fmt: skip
    """Start ``python -m searchkit serve`` on ``port``; return once ``/health`` says ready."""
    cmd = [sys.executable, "-m", "searchkit", "serve", "--corpus", corpus, "--port", str(port),
           "--log-level", "warning", "--threads", str(threads)]  # fmt: skip
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    if cache_size is not None:
        env["SEARCHKIT_CACHE_SIZE"] = str(cache_size)
    proc = subprocess.Popen(cmd, env=env)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited with status {proc.returncode} at start-up")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                return proc
        except OSError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"the server was not ready within {timeout_s} s")


@contextlib.contextmanager
def running_server(port: int, corpus: str, threads: int):
    """Start the server with :func:`start_server`; stop it when the block ends."""
    proc = start_server(port, corpus, threads)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def make_requests(n: int, seed: int = 0) -> list[tuple[str, str, bytes | None, int]]:
    """Return ``n`` seeded requests ``(method, path, body, expected_status)``."""
    rng = random.Random(seed)
    pool = [" ".join(rng.choices(WORDS, k=rng.randint(2, 6))) for _ in range(500)]
    out = []
    for i in range(n):
        r = rng.random()
        if i % 100 == 99:
            out.append(("GET", "/health", None, 200))
        elif i % 50 == 49:
            bad = rng.choice([{"query": ""}, {"query": "x", "top_k": 0}, {"query": 7}, {"query": "a", "mode": "x"}])
            out.append(("POST", "/search", json.dumps(bad).encode(), 422))
        else:
            q = rng.choice(pool) if r < 0.5 else " ".join(rng.choices(WORDS, k=4)) + f" {rng.randrange(10**9):x}"
            body = {"query": q, "top_k": 10, "mode": MODES[i % 3]}
            out.append(("POST", "/search", json.dumps(body).encode(), 200))
    return out


def run(url_port: int, reqs, clients: int, pid: int, sample_s: float = 0.25):
    """Send ``reqs`` from ``clients`` threads; return per-request latency (ms), ok flags, end times, RSS samples."""
    n = len(reqs)
    lat, ok, done_at = np.zeros(n), np.zeros(n, dtype=bool), np.zeros(n)
    cursor, lock = [0], threading.Lock()
    rss: list[tuple[float, int]] = []  # (time, bytes)
    stop = threading.Event()
    server = psutil.Process(pid)

    def monitor() -> None:
        while not stop.is_set():
            rss.append((time.perf_counter(), server.memory_info().rss))
            stop.wait(sample_s)

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", url_port, timeout=60)
        while True:
            with lock:
                i = cursor[0]
                cursor[0] += 1
            if i >= n:
                break
            method, path, body, expected = reqs[i]
            t0 = time.perf_counter()
            try:
                conn.request(method, path, body, {"Content-Type": "application/json"} if body else {})
                resp = conn.getresponse()
                resp.read()
                ok[i] = resp.status == expected
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", url_port, timeout=60)
            t1 = time.perf_counter()
            lat[i], done_at[i] = (t1 - t0) * 1000, t1
        conn.close()

    mon = threading.Thread(target=monitor, daemon=True)
    mon.start()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    mon.join()
    rss.append((time.perf_counter(), server.memory_info().rss))
    return lat, ok, done_at - t0, [(t - t0, b) for t, b in rss]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=100_000, help="requests to send (default: 100,000)")
    p.add_argument("--clients", type=int, default=8, help="client threads (default: 8)")
    p.add_argument("--windows", type=int, default=10, help="rows in the table; the first is the warm-up (default: 10)")
    p.add_argument("--corpus", default="pydocs", help="corpus to serve (default: pydocs)")
    p.add_argument("--threads", type=int, default=1, help="torch/faiss threads in the server (default: 1)")
    p.add_argument("--cache-size", type=int, default=None,
                   help="LRU entries in the server (default: its own, 10,000; the LRU's filling counts as growth)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.requests < args.windows or args.windows < 2:
        p.error("need --windows >= 2 and --requests >= --windows")

    from searchkit.serving.server import free_port

    port = free_port()
    t_start = time.perf_counter()
    proc = start_server(port, args.corpus, args.threads, args.cache_size)
    cache = "default" if args.cache_size is None else f"{args.cache_size:,}"
    print(f"server ready in {time.perf_counter() - t_start:.0f} s (pid {proc.pid}, LRU cache size {cache}); "
          f"{args.requests:,} requests from {args.clients} client threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)  # fmt: skip
    try:
        reqs = make_requests(args.requests, args.seed)
        lat, ok, ends, rss = run(port, reqs, args.clients, proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)

    edges = np.linspace(0, args.requests, args.windows + 1).astype(int)
    rss_t = np.array([t for t, _ in rss])
    rss_b = np.array([b for _, b in rss])
    print()
    print("| window | requests | elapsed s | req/s | errors | p50 ms | p95 ms | p99 ms | max ms | server RSS MiB |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    window_rss = []
    for w in range(args.windows):
        a, b = edges[w], edges[w + 1]
        t_end = ends[a:b].max()
        t_begin = ends[a - 1] if a else 0.0
        r = rss_b[rss_t <= t_end][-1] if (rss_t <= t_end).any() else rss_b[0]
        window_rss.append(r)
        p50, p95, p99 = np.percentile(lat[a:b], [50, 95, 99])
        label = f"{w + 1}" + (" (warm-up)" if w == 0 else "")
        print(f"| {label} | {b - a:,} | {t_end:.0f} | {(b - a) / max(t_end - t_begin, 1e-9):.0f} | "
              f"{int((~ok[a:b]).sum())} | {p50:.1f} | {p95:.1f} | {p99:.1f} | {lat[a:b].max():.0f} | "
              f"{r / 2**20:.1f} |")  # fmt: skip
    errors = int((~ok).sum())
    base = window_rss[0]
    after = rss_b[rss_t > ends[: edges[1]].max()]
    peak = after.max() if len(after) else base
    growth = (peak - base) / base * 100
    p50, p99 = np.percentile(lat, [50, 99])
    print()
    print(f"total: {args.requests:,} requests in {ends.max():.0f} s ({args.requests / ends.max():.0f} req/s), "
          f"{errors} errors, p50 {p50:.1f} ms, p99 {p99:.1f} ms")  # fmt: skip
    print(f"server RSS: {base / 2**20:.1f} MiB after warm-up, peak {peak / 2**20:.1f} MiB after it: "
          f"growth {growth:+.2f}% (limit 5%)")  # fmt: skip
    verdict = errors == 0 and growth < 5.0
    print("PASS" if verdict else "FAIL")
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
