"""Relevance benchmark: BM25 vs dense (exact, ANN, quantized) vs hybrid fusion on judged queries.

    python benchmarks/relevance.py --dataset pydocs
    python benchmarks/relevance.py --dataset ../shared/beir/scifact --json scifact.json

Prints nDCG@10, Recall@100 and MRR@10 with 95% bootstrap CIs (queries resampled) and the mean latency
per query (queries answered ``--batch-size`` at a time after a warm-up call, so ms_per_query includes
the query encoder). The embedding cache (data/cache/embeddings) makes a second run fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from searchkit.datasets import load_beir, load_pydocs  # noqa: E402
from searchkit.embed import default_embedder  # noqa: E402
from searchkit.engine import SearchEngine  # noqa: E402
from searchkit.evaluate import System, engine_with_index, evaluate_systems  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="pydocs", help="'pydocs' or a folder in the BEIR layout")
    p.add_argument("--json", help="write the rows to this JSON file")
    p.add_argument("--ann", default="HNSW32", help="faiss factory of the approximate index (default HNSW32)")
    p.add_argument("--quantized", default="PQ16", help="faiss factory of the compressed index (default PQ16)")
    p.add_argument("--batch-size", type=int, default=32, help="queries per engine call (default 32)")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    a = p.parse_args(argv)

    ds = load_pydocs() if a.dataset == "pydocs" else load_beir(a.dataset)
    t0 = time.perf_counter()
    emb = default_embedder()
    engine = SearchEngine.build(ds.corpus, emb)
    systems = [
        System("BM25", engine, "bm25"),
        System("dense (Flat, exact)", engine, "dense"),
        System(f"dense ({a.ann})", engine_with_index(engine, a.ann), "dense"),
        System(f"dense ({a.quantized})", engine_with_index(engine, a.quantized), "dense"),
        System("hybrid RRF (k=60)", engine, "hybrid", "rrf"),
        System("hybrid min-max", engine, "hybrid", "minmax"),
        System("hybrid z-score", engine, "hybrid", "zscore"),
    ]
    setup = time.perf_counter() - t0
    import faiss
    import torch

    print(
        f"dataset {ds.name}: {len(ds.corpus)} documents, {len(ds.judged_queries())} judged queries; "
        f"model {emb.model_id}; setup {setup:.1f} s; batch size {a.batch_size}; "
        f"threads: torch {torch.get_num_threads()}, faiss {faiss.omp_get_max_threads()}, cpus {os.cpu_count()}"
    )
    rep = evaluate_systems(
        systems, ds, metrics=("ndcg@10", "recall@100", "mrr@10"), k=100, batch_size=a.batch_size,
        n_resamples=a.resamples, progress=False,
    )  # fmt: skip
    print(rep.table())
    best = max(rep.results, key=lambda n: rep[n].estimates["ndcg@10"].mean)
    for other in ("BM25", "dense (Flat, exact)"):
        if other != best:
            print(f"{best} vs {other}, nDCG@10 difference: {rep.compare(best, other)}")
    rows = rep.json_rows()
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
