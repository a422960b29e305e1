"""Head-of-line blocking: a short uncached query's latency, idle and with big batches in flight; memory; error sizes.

Starts ``python -m searchkit serve`` (Python docs, one torch/faiss thread) in its own process, then:

1. idle: short queries one after another, each new (no cache hits): p50 / p99;
2. loaded: the same number of new short queries while ``--batches`` clients each keep a ``POST /search/batch``
   of 64 distinct 2,000-character queries in flight (new text every time, so nothing is cached);
3. the server's memory: resident now and its high-water mark (``VmHWM``) before and after the loaded phase;
4. the largest error body among hostile requests (128,000 bad batch items, 26,000 unknown fields, ...).

Goal: loaded p99 ≤ 3 × idle p99.

    python benchmarks/head_of_line.py                  # 200 short queries per phase, 2 big batches in flight
    python benchmarks/head_of_line.py --queries 50     # quicker
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from soak import running_server  # noqa: E402

from searchkit.measure.load import load_test  # noqa: E402
from searchkit.measure.report import format_table  # noqa: E402
from searchkit.serving.server import free_port  # noqa: E402

WORDS = ("read write delete copy move list parse format encode decode compress archive socket thread process file "
         "folder directory path json csv xml date time random sort search match replace split join").split()  # fmt: skip


def short_queries(n: int, seed: int) -> list[str]:
    """``n`` distinct three-word queries (never seen before by the cache)."""
    rng = random.Random(seed)
    return [f"{' '.join(rng.sample(WORDS, 3))} {seed}-{i}" for i in range(n)]


def big_batch(rng: random.Random) -> bytes:
    """A ``POST /search/batch`` body of 64 distinct 2,000-character queries."""
    queries = [" ".join(rng.choice(WORDS) for _ in range(400))[:1990] + f" {rng.random():.8f}" for _ in range(64)]
    return json.dumps({"queries": [q[:2000] for q in queries], "top_k": 10}).encode()


def keep_batches_in_flight(port: int, stop: threading.Event, seed: int, done: list) -> None:
    """Send big batches back to back until ``stop``; count the answers."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    while not stop.is_set():
        conn.request("POST", "/search/batch", big_batch(rng), {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        done.append(resp.status)
    conn.close()


def memory_mib(pid: int) -> dict[str, float]:
    """Return the server's resident memory now and its high-water mark, in MiB (Linux /proc)."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}


HOSTILE = [
    ("128,000 bad batch items", "/search/batch", b'{"queries": [' + b",".join([b"0"] * 128_000) + b"]}"),
    ("26,000 unknown fields", "/search",
     json.dumps({"query": "a", **{str(i): 0 for i in range(26_000)}}, separators=(",", ":")).encode()),
    ("a 100,000-character field name", "/search", json.dumps({"query": "a", "x" * 100_000: 1}).encode()),
    ("2,000 x U+FDFA (36,000 after NFKC)", "/search", json.dumps({"query": "\ufdfa" * 2000}).encode()),
    ("64 queries of 2,001 characters", "/search/batch", json.dumps({"queries": ["x" * 2001] * 64}).encode()),
    ("a 5,000-digit top_k", "/search", b'{"query": "a", "top_k": ' + b"7" * 5000 + b"}"),
    ("[ x 100,000", "/search", b"[" * 100_000),
]  # fmt: skip


def error_sizes(port: int) -> list[dict]:
    """Send each hostile request; return its status, request size and answer size."""
    rows = []
    for label, path, body in HOSTILE:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        resp = conn.getresponse()
        answer = resp.read()
        conn.close()
        rows.append({"request": label, "status": resp.status, "sent bytes": len(body), "answer bytes": len(answer)})
    return rows


def main() -> int:
    """Run the three phases and print tables and the goal line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queries", type=int, default=200, help="short queries per phase (default: 200)")
    p.add_argument("--batches", type=int, default=2, help="big batches kept in flight (default: 2)")
    p.add_argument("--corpus", default="pydocs")
    args = p.parse_args()
    port = free_port()
    with running_server(port, args.corpus, threads=1) as proc:
        url = f"http://127.0.0.1:{port}"
        load_test(url, short_queries(20, seed=99))  # warm-up
        idle = load_test(url, short_queries(args.queries, seed=1))
        mem_idle = memory_mib(proc.pid)
        stop, done = threading.Event(), []
        threads = [threading.Thread(target=keep_batches_in_flight, args=(port, stop, 10 + i, done), daemon=True)
                   for i in range(args.batches)]  # fmt: skip
        for t in threads:
            t.start()
        time.sleep(2.0)  # the batches are in the encoder
        loaded = load_test(url, short_queries(args.queries, seed=2))
        stop.set()
        for t in threads:
            t.join()
        mem_loaded = memory_mib(proc.pid)
        rows = [
            {"phase": "idle", "queries": args.queries, "errors": idle["errors"], "p50 ms": idle["p50"],
             "p99 ms": idle["p99"], "big batches answered": 0},
            {"phase": f"{args.batches} big batches in flight", "queries": args.queries, "errors": loaded["errors"],
             "p50 ms": loaded["p50"], "p99 ms": loaded["p99"], "big batches answered": len(done)},
        ]  # fmt: skip
        print(f"\nshort uncached dense queries over HTTP (load average {os.getloadavg()[0]:.1f})\n")
        print(format_table(rows, digits=1))
        ratio = loaded["p99"] / idle["p99"]
        verdict = "met" if ratio <= 3 else f"shortfall: {ratio:.1f}x"
        print(f"\ngoal: p99 with big batches in flight <= 3 x idle p99: {ratio:.2f}x, {verdict}")
        print("\nserver memory (MiB)\n")
        print(format_table([{"after": "idle phase", "resident": mem_idle["VmRSS"], "high-water": mem_idle["VmHWM"]},
                           {"after": "big batches", "resident": mem_loaded["VmRSS"], "high-water": mem_loaded["VmHWM"]}],
                          floats=".0f"))  # fmt: skip
        sizes = error_sizes(port)
        print("\nhostile requests: the answer stays small\n")
        print(format_table(sizes))
        print(f"\nlargest error body: {max(r['answer bytes'] for r in sizes)} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
