"""HTTP tail latency of the search app on loopback: cold and cached queries, 1 and 8 concurrent clients.

    python benchmarks/http_load.py --n-docs 500000

The app runs in its own process (so the load generator does not share its GIL) over the Python docs padded
with synthetic documents to N. Synthetic vectors are real document vectors plus noise (re-normalized), so
the IVF cells are as uneven as real ones; only the 7,466 real documents are ever embedded. Each scenario
sends a fixed number of requests from C client threads (keep-alive connections, one per thread) after a
warm-up, and prints p50/p95/p99 latency (ms, measured by the client), requests/s and errors, plus the app's own
p50/p99 (``timings_ms.total``: embedding + search inside the handler, without HTTP, JSON and queueing).
Cold queries are all distinct (every one needs the encoder); cached ones repeat 50 pre-warmed queries.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

GOALS = "goals: 1 client p99 <= 10 ms cold, <= 2 ms cached; 8 clients >= 300 req/s with p99 <= 50 ms; 0 errors"


def build_engine(n_docs: int, factory: str, nprobe: int | None, seed: int = 0):
    """Return a dense-only engine over the Python docs padded with synthetic documents to ``n_docs``."""
    from searchkit.datasets import Corpus, load_pydocs
    from searchkit.embed import default_embedder
    from searchkit.engine import SearchEngine
    from searchkit.index import VectorIndex
    from searchkit.paths import cache_dir
    from searchkit.sizing import IndexSpec

    docs = load_pydocs().corpus
    embedder = default_embedder()
    xb_real = embedder.encode_cached(docs.embedding_texts(), progress=False)
    n_pad = max(0, n_docs - len(docs))
    ids, titles, texts = list(docs.ids), list(docs.titles), list(docs.texts)
    ids += [f"synthetic-{i:07d}" for i in range(n_pad)]
    titles += [f"synthetic document {i}" for i in range(n_pad)]
    texts += ["A synthetic document that pads the corpus to the benchmark size."] * n_pad
    corpus = Corpus(ids, titles, texts)
    saved = cache_dir() / "http_load" / f"{n_docs}-{factory.replace(',', '_')}-{seed}"
    if (saved / "manifest.json").is_file():  # built by an earlier run: load it (checksums verified)
        index = VectorIndex.load(saved, model_id=embedder.model_id)
        index.nprobe = nprobe
        return SearchEngine(corpus, embedder, index, None)
    rng = np.random.default_rng(seed)
    parts = [xb_real]
    for start in range(0, n_pad, 100_000):
        m = min(100_000, n_pad - start)
        x = xb_real[rng.integers(0, len(xb_real), m)] + rng.normal(0, 0.03, (m, embedder.dim)).astype(np.float32)
        parts.append(x / np.linalg.norm(x, axis=1, keepdims=True))
    xb = np.ascontiguousarray(np.concatenate(parts), dtype=np.float32)
    index = VectorIndex.build(ids, xb, IndexSpec(factory, nprobe=nprobe), model_id=embedder.model_id,
                              max_train=100_000, seed=seed)  # fmt: skip
    index.save(saved)
    return SearchEngine(corpus, embedder, index, None)


def serve(args: argparse.Namespace) -> None:
    """Build the padded engine and serve it (the child process)."""
    import uvicorn

    from searchkit.app import create_app
    from searchkit.server import set_compute_threads

    t0 = time.perf_counter()
    engine = build_engine(args.n_docs, args.factory, args.nprobe)
    print(f"built {engine!r} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    set_compute_threads(args.threads)
    uvicorn.run(create_app(engine), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


def cold_queries(n: int) -> list[str]:
    """Return ``n`` distinct realistic queries (the judged pydocs queries, varied so none repeats)."""
    from searchkit.datasets import load_pydocs

    base = list(load_pydocs().queries.values())
    words = ["quickly", "in python", "example", "safely", "for a beginner", "with the stdlib", "how to", "best way"]
    out = []
    for i in range(n):
        q = base[i % len(base)]
        r = i // len(base)
        out.append(q if r == 0 else f"{q} {words[r % len(words)]} {r}")
    return out


def load(port: int, queries: list[str], clients: int, top_k: int) -> dict:
    """Send ``queries`` from ``clients`` threads (see :func:`searchkit.bench.load_test`)."""
    from searchkit.bench import load_test

    res = load_test(f"http://127.0.0.1:{port}", queries, clients, top_k)
    return {"lat": res["lat_ms"], "wall": res["wall_s"], "errors": res["errors"], "cached": res["cached"],
            "server_p50": res["server_p50"], "server_p99": res["server_p99"]}  # fmt: skip


def row(name: str, clients: int, res: dict) -> str:
    p50, p95, p99 = np.percentile(res["lat"], [50, 95, 99])
    n = len(res["lat"])
    return (f"| {name:6s} | {clients:7d} | {n:8d} | {p50:7.2f} | {p95:7.2f} | {p99:7.2f} | {n / res['wall']:7.0f} "
            f"| {res['errors']:6d} | {res['cached'] / n:6.0%} | {res['server_p50']:7.2f} | {res['server_p99']:7.2f} |")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-docs", type=int, default=500_000, help="documents in the index (default 500,000)")
    p.add_argument("--factory", default="IVF1024,Flat", help="faiss factory (default IVF1024,Flat)")
    p.add_argument("--nprobe", type=int, default=32, help="IVF cells visited per query (default 32)")
    p.add_argument("--requests", type=int, default=1000, help="requests per scenario (default 1000)")
    p.add_argument("--warmup", type=int, default=50, help="warm-up requests before each scenario (default 50)")
    p.add_argument("--clients", default="1,8", help="concurrency levels, comma-separated (default 1,8)")
    p.add_argument("--top-k", type=int, default=10, help="results per query (default 10)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--threads", type=int, default=1, help="torch/faiss threads in the app (default 1)")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.factory.lower() == "flat":
        args.nprobe = None
    if args.serve:
        return serve(args)

    import httpx

    from searchkit.server import free_port

    port = args.port or free_port()
    cmd = [sys.executable, __file__, "--serve", "--port", str(port), "--n-docs", str(args.n_docs),
           "--factory", args.factory, "--nprobe", str(args.nprobe or 0), "--threads", str(args.threads)]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    server = subprocess.Popen(cmd, env=env)
    try:
        while True:
            if server.poll() is not None:
                raise SystemExit(f"the app exited with status {server.returncode} before it was ready")
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
                if health.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        h = health.json()
        levels = [int(c) for c in args.clients.split(",")]
        print(f"# app ready after {time.perf_counter() - t0:.0f} s: {h['documents']:,} documents, index "
              f"{h['index']['factory']} (nprobe {args.nprobe}), model {h['model']}, cache {h['cache']['backend']}")  # fmt: skip
        print(f"# {args.requests} requests per row after {args.warmup} warm-up, top_k={args.top_k}, "
              f"{os.cpu_count()} CPU cores shared by app and client, {args.threads} torch/faiss thread(s) in the app")  # fmt: skip
        print(f"# {GOALS}\n")
        print("| query  | clients | requests |  p50 ms |  p95 ms |  p99 ms |   req/s | errors | cached | app p50 | app p99 |")
        print("|--------|--------:|---------:|--------:|--------:|--------:|--------:|-------:|-------:|--------:|--------:|")
        pool = cold_queries(args.warmup + args.requests * len(levels) + 100)
        hot = [f"hot query {i}: how do I read a file line by line" for i in range(50)]
        load(port, hot, 1, args.top_k)  # put the hot queries in the cache
        used = 0
        for clients in levels:
            load(port, pool[used : used + args.warmup], clients, args.top_k)  # warm-up (not counted)
            used += args.warmup
            res = load(port, pool[used : used + args.requests], clients, args.top_k)
            used += args.requests
            print(row("cold", clients, res), flush=True)
            load(port, hot * (args.warmup // 50 + 1), clients, args.top_k)
            res = load(port, [hot[i % 50] for i in range(args.requests)], clients, args.top_k)
            print(row("cached", clients, res), flush=True)
        cache = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()["cache"]
        print(f"\n# cache after the run: {cache['hits']} hits, {cache['misses']} misses, size {cache.get('size')}")
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
