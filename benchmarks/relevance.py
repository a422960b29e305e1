"""Relevance benchmark: BM25 vs dense (exact, ANN, quantized) vs hybrid fusion on judged queries.

    python benchmarks/relevance.py --dataset pydocs
    python benchmarks/relevance.py --dataset ../shared/beir/scifact --json scifact.json [--backend torch]
    python benchmarks/relevance.py --dataset ../shared/beir/scifact --model DIR   # a fine-tuned model (finetune)

Prints nDCG@10, Recall@100 and MRR@10 with 95% bootstrap CIs (queries resampled) and the mean latency
per query (queries answered ``--batch-size`` at a time after a warm-up call, so ms_per_query includes
the query encoder). The embedding cache (data/cache/embeddings) makes a second run fast. "hybrid (app default)"
is what the app and the command line use for this corpus (the tuned data/pydocs/fusion.json for pydocs, RRF
k=60 elsewhere); a 5-fold cross-validation of the fusion grid (searchkit.relevance.tuning) follows, with held-out scores.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from searchkit.corpus.datasets import load_beir
from searchkit.corpus.pydocs import load_pydocs  # noqa: E402
from searchkit.encoders.embed import default_embedder  # noqa: E402
from searchkit.encoders.models import BACKENDS, DEFAULT_BACKEND  # noqa: E402
from searchkit.engine import SearchEngine  # noqa: E402
from searchkit.relevance.evaluate import System, engine_with_index, evaluate_systems  # noqa: E402
from searchkit.relevance.tuning import apply_fusion, fusion_for, tune_fusion  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="pydocs", help="'pydocs' or a folder in the BEIR layout")
    p.add_argument("--json", help="write the rows to this JSON file")
    p.add_argument("--ann", default="HNSW32", help="faiss factory of the approximate index (default HNSW32)")
    p.add_argument("--quantized", default="PQ16", help="faiss factory of the compressed index (default PQ16)")
    p.add_argument("--batch-size", type=int, default=32, help="queries per engine call (default 32)")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    p.add_argument("--backend", default=DEFAULT_BACKEND, choices=BACKENDS, help=f"encoder (default {DEFAULT_BACKEND})")
    p.add_argument("--model", default=None, help="embedding model folder, e.g. from finetune (default all-MiniLM-L6-v2)")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds for the fusion grid (default 5)")
    a = p.parse_args(argv)

    ds = load_pydocs() if a.dataset == "pydocs" else load_beir(a.dataset)
    t0 = time.perf_counter()
    emb = default_embedder(a.backend, a.model)
    engine = SearchEngine.build(ds.corpus, emb)
    app = copy.copy(engine)
    app_fusion = fusion_for("pydocs" if a.dataset == "pydocs" else f"beir:{a.dataset}")
    apply_fusion(app, app_fusion)
    systems = [
        System("BM25", engine, "bm25"),
        System("dense (Flat, exact)", engine, "dense"),
        System(f"dense ({a.ann})", engine_with_index(engine, a.ann), "dense"),
        System(f"dense ({a.quantized})", engine_with_index(engine, a.quantized), "dense"),
        System("hybrid RRF (k=60)", engine, "hybrid", "rrf"),
        System("hybrid min-max", engine, "hybrid", "minmax"),
        System("hybrid z-score", engine, "hybrid", "zscore"),
        System("hybrid (app default)", app, "hybrid"),
    ]
    setup = time.perf_counter() - t0
    import faiss
    import torch

    print(
        f"dataset {ds.name}: {len(ds.corpus)} documents, {len(ds.judged_queries())} judged queries; "
        f"model {emb.model_id} ({a.backend}); app default fusion: {app_fusion}; setup {setup:.1f} s; batch size {a.batch_size}; "
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
    diff = rep.compare("hybrid (app default)", "dense (Flat, exact)")
    verdict = "met" if diff.diff >= 0 else f"NOT met (short by {-diff.diff:.3f})"
    print(f"goal {ds.name} hybrid (app default) >= dense, nDCG@10: {verdict}; difference {diff}")
    res = tune_fusion(engine, ds, folds=a.folds)
    print(f"\nfusion grid, {a.folds}-fold cross-validation (each fold scored by the config chosen on the others):")
    print(res.fold_table(), res.table(), sep="\n\n")
    print(f"hybrid-tuned (held-out) vs dense, nDCG@10 difference: {res.compare('held-out', 'dense')}")
    print(f"hybrid-tuned (held-out) vs hybrid-default (RRF k=60), nDCG@10 difference: {res.compare('held-out', 'hybrid-default')}")
    print(f"chosen on all queries: {res.best}")
    held = res.estimate("held-out")
    rows = rep.json_rows() + [{"system": f"hybrid-tuned (held-out, {a.folds}-fold)", "ndcg_at_10": round(held.mean, 4),
                               "ndcg_ci_low": round(held.low, 4), "ndcg_ci_high": round(held.high, 4)}]  # fmt: skip
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
