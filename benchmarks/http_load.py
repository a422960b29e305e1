"""HTTP tail latency of the search app on loopback: cold and cached queries, 1 and 8 concurrent clients.

    python benchmarks/http_load.py --n-docs 500000

The app runs in its own process (so the load generator does not share its GIL) over the Python docs padded
with synthetic documents to N. Synthetic vectors are real document vectors plus noise (re-normalized), so
the IVF cells are as uneven as real ones; only the 7,416 real documents are ever embedded. Each scenario
sends a fixed number of requests from C client threads (keep-alive connections, one per thread) after a
warm-up, and prints p50/p95/p99 latency (ms, measured by the client), requests/s and errors, plus the app's own
p50/p99 (``timings_ms.total``: embedding + search inside the handler, without HTTP, JSON and queueing).
Cold queries are all distinct (every one needs the encoder); cached ones repeat 50 pre-warmed queries, which
the app's result cache answers whole (``--result-cache 0`` turns it off: cached rows then reuse only the query
vectors and still search the index; ``--result-cache 0 1000`` measures both, one app each).

    python benchmarks/http_load.py --n-docs 500000 --backend onnx-int8 --json http.json
    python benchmarks/http_load.py --n-docs 50000 --snippet 0   # and clients that ask for no text

``--backend`` picks the query encoder (default: the fastest at equal quality, onnx-int8).
``--snippet N`` adds rows where the client asks for at most N characters of text per hit (0: none), with
the bytes per response. ``--json OUT`` writes one row per scenario: scenario, clients, p50_ms, p95_ms,
p99_ms, rps, errors, backend (plus snippet, bytes).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

GOALS = "goals: 1 client p99 <= 10 ms cold, <= 2 ms cached; 8 clients >= 300 req/s with p99 <= 50 ms; 0 errors"
HEADER = ("| query  | clients | snippet | requests |  p50 ms |  p95 ms |  p99 ms |   req/s | errors | cached "
          "| KB/resp | app p50 | app p99 |")


def build_engine(n_docs: int, factory: str, nprobe: int | None, backend: str, seed: int = 0):
    """Return a dense-only engine over the Python docs padded with synthetic documents to ``n_docs``."""
    from searchkit.config import cache_dir
    from searchkit.corpus.datasets import Corpus
    from searchkit.corpus.pydocs import load_pydocs
    from searchkit.encoders.embed import default_embedder
    from searchkit.engine import SearchEngine
    from searchkit.index.sizing import IndexSpec
    from searchkit.index.vector import VectorIndex

    docs = load_pydocs().corpus
    embedder = default_embedder(backend)
    xb_real = embedder.encode_cached(docs.embedding_texts(), progress=False)
    n_pad = max(0, n_docs - len(docs))
    ids, titles, texts = list(docs.ids), list(docs.titles), list(docs.texts)
    ids += [f"synthetic-{i:07d}" for i in range(n_pad)]
    titles += [f"synthetic document {i}" for i in range(n_pad)]
    texts += ["A synthetic document that pads the corpus to the benchmark size."] * n_pad
    corpus = Corpus(ids, titles, texts)
    real = hashlib.sha1(xb_real.tobytes()).hexdigest()[:8]  # a rebuilt corpus (new Python, new collector) rebuilds
    saved = cache_dir() / "http_load" / f"{n_docs}-{factory.replace(',', '_')}-{backend}-{seed}-{real}"
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
    index.backend = backend
    index.save(saved)
    return SearchEngine(corpus, embedder, index, None)


def serve(args: argparse.Namespace) -> None:
    """Build the padded engine and serve it (the child process)."""
    import uvicorn

    from searchkit.serving.app import create_app
    from searchkit.threads import set_compute_threads

    t0 = time.perf_counter()
    set_compute_threads(args.threads)  # before the encoder loads: onnxruntime fixes its threads at start
    engine = build_engine(args.n_docs, args.factory, args.nprobe, args.backend)
    print(f"built {engine!r} in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    app = create_app(engine, batch_window_ms=args.batch_window_ms[0], result_cache_size=args.result_cache[0])
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


def cold_queries(n: int) -> list[str]:
    """Return ``n`` distinct realistic queries (the judged pydocs queries, varied so none repeats)."""
    from searchkit.corpus.pydocs import load_pydocs

    base = list(load_pydocs().queries.values())
    words = ["quickly", "in python", "example", "safely", "for a beginner", "with the stdlib", "how to", "best way"]
    out = []
    for i in range(n):
        q = base[i % len(base)]
        r = i // len(base)
        out.append(q if r == 0 else f"{q} {words[r % len(words)]} {r}")
    return out


def load(port: int, queries: list[str], clients: int, top_k: int, snippet: int | None = None) -> dict:
    """Send ``queries`` from ``clients`` threads (see :func:`searchkit.measure.bench.load_test`)."""
    from searchkit.measure.load import load_test

    extra = {} if snippet is None else {"snippet": snippet}
    return load_test(f"http://127.0.0.1:{port}", queries, clients, top_k, extra=extra)


def result_row(scenario: str, clients: int, res: dict, args: argparse.Namespace, snippet: int | None) -> dict:
    """Return the JSON row of one scenario."""
    return {"scenario": scenario, "clients": clients, "p50_ms": res["p50"], "p95_ms": res["p95"],
            "p99_ms": res["p99"], "rps": res["rps"], "errors": res["errors"], "backend": args.backend,
            "snippet": snippet, "bytes": res["bytes"], "requests": len(res["lat_ms"]),
            "cached_share": res["cached"] / max(1, len(res["lat_ms"])),
            "app_p50_ms": res["server_p50"], "app_p99_ms": res["server_p99"]}  # fmt: skip


def show(r: dict) -> str:
    """Return one markdown table line for a JSON row."""
    snip = "all" if r["snippet"] is None else str(r["snippet"])
    return (f"| {r['scenario']:6s} | {r['clients']:7d} | {snip:>7s} | {r['requests']:8d} "
            f"| {r['p50_ms']:7.2f} | {r['p95_ms']:7.2f} | {r['p99_ms']:7.2f} | {r['rps']:7.0f} | {r['errors']:6d} "
            f"| {r['cached_share']:6.0%} | {r['bytes'] / 1024:7.2f} | {r['app_p50_ms']:7.2f} | {r['app_p99_ms']:7.2f} |")  # fmt: skip


def goal_lines(rows: list[dict]) -> list[str]:
    """Return the goal lines ("met" or the shortfall) for the rows without a snippet."""

    def pick(scenario: str, clients: int) -> dict | None:
        return next((r for r in rows if r["scenario"] == scenario and r["clients"] == clients and r["snippet"] is None), None)

    out = []
    for scenario, clients, limit in (("cold", 1, 10.0), ("cached", 1, 2.0), ("cold", 8, 50.0)):
        r = pick(scenario, clients)
        if r is not None:
            p99 = r["p99_ms"]
            verdict = "met" if p99 <= limit else f"NOT met ({p99 / limit:.1f}x over)"
            out.append(f"goal {clients} client(s) {scenario} p99 <= {limit:g} ms: {verdict} ({p99:.1f} ms)")
    r = pick("cold", 8)
    if r is not None:
        ok = r["rps"] >= 300
        out.append(f"goal 8 clients cold >= 300 req/s: {'met' if ok else 'NOT met'} ({r['rps']:.0f} req/s)")
    errors = sum(r["errors"] for r in rows)
    out.append(f"goal 0 errors: {'met' if errors == 0 else f'NOT met ({errors} errors)'}")
    return out


def start_app(args: argparse.Namespace, window: float, results: int) -> tuple[subprocess.Popen, int, dict]:
    """Start the app (micro-batching ``window`` ms, ``results`` answers in its result cache) in a child process;
    return it, its port and its /health."""
    import httpx

    from searchkit.serving.server import free_port

    port = args.port or free_port()
    cmd = [sys.executable, __file__, "--serve", "--port", str(port), "--n-docs", str(args.n_docs),
           "--factory", args.factory, "--nprobe", str(args.nprobe or 0), "--threads", str(args.threads),
           "--backend", args.backend, "--batch-window-ms", str(window), "--result-cache", str(results)]  # fmt: skip
    server = subprocess.Popen(cmd, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    while True:
        if server.poll() is not None:
            raise SystemExit(f"the app exited with status {server.returncode} before it was ready")
        try:
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
            if health.status_code == 200:
                return server, port, health.json()
        except httpx.TransportError:
            pass
        time.sleep(0.5)


def run_all(args: argparse.Namespace, pool: list[str], window: float, results: int) -> list[dict]:
    """Measure every scenario against one app process; return the rows."""
    server, port, h = start_app(args, window, results)
    used = 0
    rows = []
    try:
        print(f"# app: {h['documents']:,} documents, index {h['index']['factory']} (nprobe {args.nprobe}), model "
              f"{h['model']}, encoder backend {h['backend']['query']}, cache "
              f"{h['cache']['backend']}, result cache {results} answers", flush=True)  # fmt: skip
        hot = [f"hot query {i}: how do I read a file line by line" for i in range(50)]
        load(port, hot, 1, args.top_k)  # put the hot queries in the cache
        for clients in [int(c) for c in args.clients.split(",")]:
            for snippet in [None, *([args.snippet] if args.snippet is not None else [])]:
                load(port, pool[used : used + args.warmup], clients, args.top_k, snippet)  # warm-up (not counted)
                used += args.warmup
                res = load(port, pool[used : used + args.requests], clients, args.top_k, snippet)
                used += args.requests
                rows.append(result_row("cold", clients, res, args, snippet))
                print(show(rows[-1]), flush=True)
                load(port, hot * (args.warmup // 50 + 1), clients, args.top_k, snippet)
                res = load(port, [hot[i % 50] for i in range(args.requests)], clients, args.top_k, snippet)
                rows.append(result_row("cached", clients, res, args, snippet))
                print(show(rows[-1]), flush=True)
    finally:
        server.terminate()
        server.wait(30)
    return [{**r, "batch_window_ms": window, "result_cache": results} for r in rows]


def main() -> None:
    from searchkit.encoders.models import BACKENDS, DEFAULT_BACKEND
    from searchkit.serving.cache import DEFAULT_RESULTS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-docs", type=int, default=500_000, help="documents in the index (default 500,000)")
    p.add_argument("--factory", default="IVF1024,Flat", help="faiss factory (default IVF1024,Flat)")
    p.add_argument("--nprobe", type=int, default=32, help="IVF cells visited per query (default 32)")
    p.add_argument("--requests", type=int, default=1000, help="requests per scenario (default 1000)")
    p.add_argument("--warmup", type=int, default=50, help="warm-up requests before each scenario (default 50)")
    p.add_argument("--clients", default="1,8", help="concurrency levels, comma-separated (default 1,8)")
    p.add_argument("--top-k", type=int, default=10, help="results per query (default 10)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument("--threads", type=int, default=1, help="encoder/faiss threads in the app (default 1)")
    p.add_argument("--backend", default=DEFAULT_BACKEND, choices=BACKENDS, help=f"query encoder (default {DEFAULT_BACKEND})")
    p.add_argument("--snippet", type=int, default=None, help="also measure clients asking for N characters of text per hit")
    p.add_argument("--batch-window-ms", type=float, nargs="+", default=[0.0],
                   help="micro-batching: ms an uncached query waits for others to share its encoder call (several: a sweep, one app each)")
    p.add_argument("--result-cache", type=int, nargs="+", default=[DEFAULT_RESULTS],
                   help=f"answers the app's result cache keeps (default {DEFAULT_RESULTS}; 0: off, cached rows then "
                        "reuse only query vectors; several: one app each)")
    p.add_argument("--json", help="write one row per scenario to this JSON file")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.factory.lower() == "flat":
        args.nprobe = None
    if args.serve:
        return serve(args)

    print(f"# {args.requests} requests per row after {args.warmup} warm-up, top_k={args.top_k}, "
          f"{os.cpu_count()} CPU cores shared by app and client, {args.threads} encoder/faiss thread(s) in the app")  # fmt: skip
    print(f"# {GOALS}\n")
    print(HEADER)
    print("|--------|" + "--------:|" * 12)
    n_levels = len(args.clients.split(",")) * (2 if args.snippet is not None else 1)
    pool = cold_queries((args.warmup + args.requests) * n_levels + 100)  # every app starts with an empty cache
    rows = []
    apps = [(w, n) for w in args.batch_window_ms for n in args.result_cache]
    for window, results in apps:
        print(f"| batch window {window:g} ms, result cache {results} |")
        rows += run_all(args, pool, window, results)
    for window, results in apps:
        print(f"\n# batch window {window:g} ms, result cache {results}")
        for line in goal_lines([r for r in rows if (r["batch_window_ms"], r["result_cache"]) == (window, results)]):
            print(line)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {len(rows)} rows to {args.json}")


if __name__ == "__main__":
    main()
