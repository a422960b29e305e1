"""Sharded search on a local Ray cluster beside the unsharded index, and the arithmetic for 100M and 1B vectors.

    python benchmarks/shards.py --n 1000000 --shards 1 2 4 [--queries 500] [--latency-queries 200] [--nprobe 16]

N SYNTHETIC unit vectors fitted to the MiniLM embeddings of the Python docs (searchkit.corpus.synthetic), an IVF index
sized per shard (IVF<suggest_nlist(n per shard)>,Flat, the same nprobe everywhere). For the unsharded index and for
each shard count: recall@10 against exact search, single-query p50/p99 over every run (raw: scheduler noise kept),
batch throughput, serialized MB per shard and resident MB per shard actor. "overhead" is the sharded p50 minus the
unsharded p50: the price of the Ray round trip, the scatter and the merge. On a 2-core machine sharding cannot
make anything faster; it shows what a query pays to go through the cluster. The closing table sizes 100M and 1B.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from searchkit.index.codes import memory_estimate
from searchkit.index.sizing import suggest_nlist
from searchkit.index.vector import IndexSpec, VectorIndex
from searchkit.measure.bench import Timer, ground_truth, index_bytes, percentiles, recall_at_k, time_batch, time_single
from searchkit.measure.report import format_table
from searchkit.scale import cluster
from searchkit.scale.shards import ShardedIndex, build_shards

K = 10
DIM = 384


def spec_for(n: int) -> IndexSpec:
    """Return the IVF spec this benchmark uses for an index (or shard) of ``n`` vectors."""
    return IndexSpec(f"IVF{suggest_nlist(n, per_sqrt=4.0)},Flat")


def measure(name: str, search, xq: np.ndarray, truth: np.ndarray, lat_q: int, repeats: int) -> tuple[dict, np.ndarray]:
    """Return a row (recall, p50/p99 raw, batch qps) for ``search(xq) -> ids`` and the single-query samples."""
    found = search(xq)
    recall = recall_at_k(found, [[str(i) for i in row] for row in truth], K)
    samples = []

    def timed(q: np.ndarray):
        t0 = time.perf_counter()
        search(q)
        samples.append((time.perf_counter() - t0) * 1000)

    time_single(timed, xq[:lat_q], warmup=10, repeats=repeats, threads=1)
    samples = np.array(samples[min(10, lat_q):])
    p = percentiles(samples, (50, 99))
    qps = time_batch(search, xq, repeats=3)
    return {"index": name, "recall@10": recall, "p50_ms": p["p50"], "p99_ms": p["p99"], "qps_batch": qps}, samples


def actor_rss_mb(pids: list[int]) -> list[float]:
    """Return the resident memory of each process in MB."""
    import psutil

    return [psutil.Process(p).memory_info().rss / 1e6 for p in pids]


def scale_table(node_gb: float, shard_p99_at: dict, overhead_ms: float) -> list[dict]:
    """Return memory per node, shard counts and an expected p99 for 100M and 1B vectors of 384 floats."""
    rows = []
    n_meas, lat = shard_p99_at["n"], shard_p99_at["samples"]
    for n in (100_000_000, 1_000_000_000):
        for codec in ("Flat", "SQ8", "PQ48"):
            factory = f"IVF{suggest_nlist(n, per_sqrt=4.0)},{codec}"
            total = memory_estimate(factory, DIM).total(n)
            shards = max(1, math.ceil(total / (node_gb * 1e9)))
            per_shard = n / shards
            # IVF work per query grows like nprobe * n / nlist ~ sqrt(n) with nlist ~ sqrt(n); the slowest of
            # S shards is at the p(100 * 0.99^(1/S)) of one shard's latency; then the merge and the round trip.
            grow = math.sqrt(per_shard / n_meas)
            tail = float(np.percentile(lat, 100 * 0.99 ** (1 / shards)))
            rows.append({
                "vectors": f"{n / 1e9:g}B" if n >= 1e9 else f"{n / 1e6:g}M", "index": factory,
                "GB_total": total / 1e9, "nodes_of_GB": node_gb, "shards": shards, "GB_per_shard": total / 1e9 / shards,
                "expected_p99_ms": tail * grow + overhead_ms,
            })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000, help="number of synthetic vectors (default 200000)")
    ap.add_argument("--shards", type=int, nargs="+", default=[1, 2, 4], help="shard counts to measure")
    ap.add_argument("--queries", type=int, default=500, help="queries for recall and batch throughput")
    ap.add_argument("--latency-queries", type=int, default=200, help="queries timed one at a time")
    ap.add_argument("--repeats", type=int, default=2, help="timed runs per query")
    ap.add_argument("--nprobe", type=int, default=16, help="IVF cells searched per query (every index)")
    ap.add_argument("--node-gb", type=float, default=96.0, help="index memory per node for the 100M/1B table")
    args = ap.parse_args(argv)

    from searchkit.corpus.synthetic import pydocs_fit, synthetic_embeddings

    t_start = time.time()
    fit = pydocs_fit()
    xb = synthetic_embeddings(args.n, fit, seed=0, progress=True)
    xq = synthetic_embeddings(args.queries, fit, seed=1)
    ids = [str(i) for i in range(args.n)]
    truth = ground_truth(xb, xq, K)
    lat_q = min(args.latency_queries, len(xq))
    rows = []

    with Timer() as t:
        single = VectorIndex.build(ids, xb, spec_for(args.n), progress=True)
    row, base = measure(f"unsharded {single.factory}", lambda q: single.search(q, K, nprobe=args.nprobe).ids,
                        xq, truth, lat_q, args.repeats)
    base_p50 = row["p50_ms"]
    rows.append({**row, "shards": 0, "MB_per_shard": index_bytes(single) / 1e6, "RSS_MB_per_actor": float("nan"),
                 "overhead_ms": 0.0, "build_s": t.s})  # fmt: skip
    del single

    print(f"starting a local Ray cluster (2 CPUs, 127.0.0.1) after {time.time() - t_start:.0f} s", flush=True)
    ray_cluster = cluster.start_local(num_cpus=2)
    try:
        for s in args.shards:
            folder = Path(tempfile.mkdtemp(prefix=f"shards{s}-"))
            try:
                with Timer() as t:
                    build_shards(ids, xb, s, folder, spec_for(args.n // s), progress=True)
                index = ShardedIndex.load(folder)
                name = f"{s} shard{'s' * (s > 1)} {index.factory}"
                row, _ = measure(name, lambda q: index.search(q, K, nprobe=args.nprobe).ids, xq, truth, lat_q,
                                       args.repeats)  # fmt: skip
                sizes = [sum(f.stat().st_size for f in d.glob("index-*")) / 1e6 for d in folder.glob("shard-*")]
                rss = actor_rss_mb(index.pids())
                rows.append({**row, "shards": s, "MB_per_shard": float(np.mean(sizes)),
                             "RSS_MB_per_actor": float(np.mean(rss)), "overhead_ms": row["p50_ms"] - base_p50,
                             "build_s": t.s})  # fmt: skip
                index.close()
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        ray_cluster.stop()
    print()
    print(f"{args.n:,} synthetic vectors, d={DIM}, nprobe={args.nprobe}, recall@{K} vs exact; p50/p99 over "
          f"{lat_q} single queries x {args.repeats} runs (raw); qps = {len(xq)} queries in one call")
    print(format_table(rows, ["index", "shards", "recall@10", "p50_ms", "p99_ms", "qps_batch", "overhead_ms",
                              "MB_per_shard", "RSS_MB_per_actor", "build_s"]))  # fmt: skip
    overhead = float(np.median([r["overhead_ms"] for r in rows if r["shards"]]))
    print(f"\nscatter-gather overhead per query (sharded p50 - unsharded p50), median over shard counts: {overhead:.2f} ms")
    print(f"\nsizing 100M and 1B vectors (memory_estimate; nodes hold {args.node_gb:g} GB of index each; expected p99 = "
          f"the unsharded index's latency at the p(100*0.99^(1/S)) percentile, scaled by sqrt(vectors per shard / {args.n:,}), "
          f"+ {overhead:.2f} ms overhead):")
    print(format_table(scale_table(args.node_gb, {"n": args.n, "samples": base}, overhead)))
    print(f"total {time.time() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
