"""Encoder benchmark: torch float vs ONNX float vs ONNX int8 — documents per second and nDCG@10 (exact Flat search).

    python benchmarks/encoders.py --dataset pydocs
    python benchmarks/encoders.py --dataset ../shared/beir/scifact --json scifact-encoders.json

Speed: the same ``--n`` corpus texts, the same batch size and thread count for every backend; after one
warm-up each, the backends are timed in turns (round-robin, ``--repeats`` rounds, so a busy machine slows all
alike) and the median is reported. Quality: every backend embeds the whole corpus (cached in
data/cache/embeddings under its own model id) and its own queries; exact inner-product search (faiss Flat);
nDCG@10 against the relevance judgments.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from searchkit.corpus.datasets import load_beir
from searchkit.corpus.pydocs import load_pydocs  # noqa: E402
from searchkit.encoders.embed import Embedder  # noqa: E402
from searchkit.index.vector import VectorIndex  # noqa: E402
from searchkit.relevance.metrics import evaluate  # noqa: E402

BACKENDS = {"torch": "torch float32", "onnx": "ONNX float32", "onnx-int8": "ONNX int8"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="pydocs", help="'pydocs' or a folder in the BEIR layout")
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
    ds = load_pydocs() if a.dataset == "pydocs" else load_beir(a.dataset)
    texts = ds.corpus.embedding_texts()
    queries = ds.judged_queries()
    embedders = {b: Embedder(backend=b, batch_size=a.batch_size) for b in BACKENDS}  # onnx threads = torch's
    sample = texts[: a.n]
    print(
        f"dataset {ds.name}: {len(texts)} documents, {len(queries)} judged queries; speed on {len(sample)} documents, "
        f"batch size {a.batch_size}, {a.repeats} rounds (median); threads: torch {threads}, onnxruntime "
        f"{embedders['onnx'].model.threads}, faiss {faiss.omp_get_max_threads()}, cpus {os.cpu_count()}",
        flush=True,
    )
    times: dict[str, list[float]] = {b: [] for b in BACKENDS}
    for emb in embedders.values():
        emb.encode(sample[: a.batch_size * 2], progress=False)  # warm-up
    for _ in range(a.repeats):
        for b, emb in embedders.items():
            t0 = time.perf_counter()
            emb.encode(sample, progress=False)
            times[b].append(time.perf_counter() - t0)

    rows = []
    qids = list(queries)
    for b, emb in embedders.items():
        xb = emb.encode_cached(texts, progress=True)
        index = VectorIndex(emb.dim, "Flat", model_id=emb.model_id)
        index.add(ds.corpus.ids, xb)
        res = index.search(emb.encode([queries[q] for q in qids], progress=False), 10)
        run = {q: ids for q, ids in zip(qids, res.ids)}
        docs_per_s = len(sample) / statistics.median(times[b])
        rows.append({
            "backend": b, "name": BACKENDS[b], "docs_per_s": docs_per_s,
            "ndcg_at_10": evaluate(run, ds.qrels, ["ndcg@10"])["ndcg@10"],
            "threads": threads, "batch_size": a.batch_size, "n_timed": len(sample), "dataset": ds.name,
        })  # fmt: skip
    base = rows[0]
    for r in rows:
        r["speedup"] = r["docs_per_s"] / base["docs_per_s"]
        r["ndcg_diff"] = r["ndcg_at_10"] - base["ndcg_at_10"]

    print("\n| encoder | docs/s | speed-up vs torch | nDCG@10 | Δ nDCG@10 |\n|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {r['docs_per_s']:.1f} | {r['speedup']:.2f}× | {r['ndcg_at_10']:.4f} "
              f"| {r['ndcg_diff']:+.4f} |")  # fmt: skip
    int8 = rows[-1]
    ok = int8["speedup"] >= 2.5 and abs(int8["ndcg_diff"]) <= 0.01
    print(f"\ngoal (int8 ≥ 2.5× torch docs/s, nDCG@10 within 0.01): {'met' if ok else 'NOT met'} "
          f"({int8['speedup']:.2f}×, {int8['ndcg_diff']:+.4f})")  # fmt: skip
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
