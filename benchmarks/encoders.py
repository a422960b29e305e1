"""Encoder benchmark: torch float vs ONNX float vs ONNX int8 — documents per second and nDCG@10 (exact Flat search).

    python benchmarks/encoders.py --dataset pydocs --dataset ../shared/beir/scifact --json encoders.json

Speed: the same ``--n`` corpus texts, the same batch size and thread count for every backend; after one
warm-up each, the backends are timed in turns (round-robin, ``--repeats`` rounds, so a busy machine slows all
alike) and the median is reported. Quality: every backend embeds the whole corpus (cached in
data/cache/embeddings under its own model id) and its own queries; exact inner-product search (faiss Flat);
nDCG@10 against the relevance judgments, and each backend's paired difference from PyTorch with its 95% bootstrap
CI: the int8 encoder is the default only where it is never significantly below PyTorch (the goal lines).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from searchkit.corpus.datasets import load_beir
from searchkit.corpus.pydocs import load_pydocs  # noqa: E402
from searchkit.encoders.embed import Embedder  # noqa: E402
from searchkit.index.vector import VectorIndex  # noqa: E402
from searchkit.relevance.metrics import paired_bootstrap, per_query  # noqa: E402

BACKENDS = {"torch": "torch float32", "onnx": "ONNX float32", "onnx-int8": "ONNX int8"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", action="append", help="'pydocs' or a folder in the BEIR layout (repeat for several; "
                   "default: pydocs)")  # fmt: skip
    p.add_argument("--json", help="write the rows to this JSON file")
    p.add_argument("--n", type=int, default=1000, help="corpus texts timed per round (default 1000)")
    p.add_argument("--batch-size", type=int, default=32, help="texts per encoder call (default 32)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    p.add_argument("--threads", type=int, help="threads for torch and onnxruntime (default: torch's default)")
    a = p.parse_args(argv)

    import faiss
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    threads = torch.get_num_threads()
    embedders = {b: Embedder(backend=b, batch_size=a.batch_size) for b in BACKENDS}  # onnx threads = torch's
    rows, goals = [], []
    for spec in a.dataset or ["pydocs"]:
        ds = load_pydocs() if spec == "pydocs" else load_beir(spec)
        texts = ds.corpus.embedding_texts()
        sample = texts[: a.n]
        print(
            f"\ndataset {ds.name}: {len(texts)} documents, {len(ds.judged_queries())} judged queries; speed on "
            f"{len(sample)} documents, batch size {a.batch_size}, {a.repeats} rounds (median); threads: torch "
            f"{threads}, onnxruntime {embedders['onnx'].model.threads}, faiss {faiss.omp_get_max_threads()}, "
            f"cpus {os.cpu_count()}", flush=True,
        )  # fmt: skip
        times = time_backends(embedders, sample, a.repeats, a.batch_size)
        scores = {b: per_query_ndcg(emb, ds) for b, emb in embedders.items()}
        base = "torch"
        for b in BACKENDS:
            c = paired_bootstrap(scores[b], scores[base])
            rows.append({
                "dataset": ds.name, "backend": b, "name": BACKENDS[b], "docs_per_s": len(sample) / statistics.median(times[b]),
                "ndcg_at_10": float(np.mean(scores[b])), "ndcg_diff": c.diff, "diff_low": c.low, "diff_high": c.high,
                "p_value": c.p_value, "queries": c.n, "threads": threads, "batch_size": a.batch_size, "n_timed": len(sample),
            })  # fmt: skip
        sub = [r for r in rows if r["dataset"] == ds.name]
        for r in sub:
            r["speedup"] = r["docs_per_s"] / sub[0]["docs_per_s"]
        print("\n| encoder | docs/s | speed-up vs torch | nDCG@10 | Δ vs torch [95% CI], paired |\n|---|---:|---:|---:|---|")
        for r in sub:
            print(f"| {r['name']} | {r['docs_per_s']:.1f} | {r['speedup']:.2f}× | {r['ndcg_at_10']:.4f} "
                  f"| {r['ndcg_diff']:+.4f} [{r['diff_low']:+.4f}, {r['diff_high']:+.4f}] p={r['p_value']:.3g} |")  # fmt: skip
        int8 = sub[-1]
        ok = int8["diff_high"] >= 0  # never significantly below PyTorch
        goals.append(ok)
        print(f"goal ({ds.name}: int8 nDCG@10 not significantly below torch, paired 95% CI of the difference reaches 0): "
              f"{'met' if ok else 'NOT met'} ({int8['ndcg_diff']:+.4f} [{int8['diff_low']:+.4f}, {int8['diff_high']:+.4f}]; "
              f"{int8['speedup']:.2f}× torch's docs/s)")  # fmt: skip
    print(f"\ngoal (int8 as the default: not significantly below torch on every judged set): "
          f"{'met' if all(goals) else 'NOT met'}")
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))
    return 0


def time_backends(embedders: dict, sample: list[str], repeats: int, batch_size: int) -> dict[str, list[float]]:
    """Time each encoder on ``sample`` in turns (round-robin, so a busy machine slows all alike), after a warm-up."""
    times: dict[str, list[float]] = {b: [] for b in embedders}
    for emb in embedders.values():
        emb.encode(sample[: batch_size * 2], progress=False)
    for _ in range(repeats):
        for b, emb in embedders.items():
            t0 = time.perf_counter()
            emb.encode(sample, progress=False)
            times[b].append(time.perf_counter() - t0)
    return times


def per_query_ndcg(emb: Embedder, ds) -> np.ndarray:
    """Return nDCG@10 per judged query of exact search over the corpus embedded (and cached) by ``emb``."""
    queries = ds.judged_queries()
    qids = list(queries)
    index = VectorIndex(emb.dim, "Flat", model_id=emb.model_id)
    index.add(ds.corpus.ids, emb.encode_cached(ds.corpus.embedding_texts(), progress=True))
    res = index.search(emb.encode([queries[q] for q in qids], progress=False), 10)
    return per_query({q: ids for q, ids in zip(qids, res.ids)}, ds.qrels, "ndcg@10", queries=qids)


if __name__ == "__main__":
    raise SystemExit(main())
