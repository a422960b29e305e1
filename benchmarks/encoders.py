"""Encoder benchmark: torch, ONNX float, ONNX int8 and the static model — docs/s, query latency and nDCG@10.

    python benchmarks/encoders.py --dataset pydocs --dataset ../shared/beir/scifact --dataset wordnet --json encoders.json

Speed: the same ``--n`` corpus texts, the same batch size and thread count for every backend; after one
warm-up each, the backends are timed in turns (round-robin, ``--repeats`` rounds, so a busy machine slows all
alike) and the median is reported; query latency is the median of ``--latency-queries`` judged queries embedded
one at a time. Quality: every backend embeds the whole corpus (cached in data/cache/embeddings under its own cache
id) and its own queries; exact inner-product search (faiss Flat); nDCG@10 against the relevance judgments, and each
system's paired difference from the reference (PyTorch, else int8) with its 95% bootstrap CI. Beside the dense rows:
BM25, static + BM25 hybrid (z-score fusion), and two stages (static retrieves 100, the int8 MiniLM vectors
re-score them). Corpora over ``--max-docs`` documents (the dictionary: 117,659) are cut for the transformer
backends to every judged document and evenly spread others; the static model is also timed on the whole corpus
(embedded and indexed, the goal line).
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

from searchkit.corpus.loaders import load_dataset  # noqa: E402
from searchkit.encoders.embed import Embedder  # noqa: E402
from searchkit.engine import SearchEngine  # noqa: E402
from searchkit.index.vector import VectorIndex  # noqa: E402
from searchkit.relevance.lexical import BM25  # noqa: E402
from searchkit.relevance.metrics import paired_bootstrap, per_query  # noqa: E402

BACKENDS = {"torch": "torch float32", "onnx": "ONNX float32", "onnx-int8": "ONNX int8", "static": "static (distilled)"}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", action="append", help="'pydocs', 'wordnet' or a folder in the BEIR layout (repeat for "
                   "several; default: pydocs)")  # fmt: skip
    p.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=list(BACKENDS), help="encoders (default: all)")
    p.add_argument("--json", help="write the rows to this JSON file")
    p.add_argument("--n", type=int, default=1000, help="corpus texts timed per round (default 1000)")
    p.add_argument("--batch-size", type=int, default=32, help="texts per encoder call (default 32)")
    p.add_argument("--repeats", type=int, default=5, help="timed rounds (default 5)")
    p.add_argument("--latency-queries", type=int, default=200, help="queries timed one at a time (default 200)")
    p.add_argument("--max-docs", type=int, default=20000, help="larger corpora are cut for the transformers (default 20000)")
    p.add_argument("--threads", type=int, help="threads for torch and onnxruntime (default: torch's default)")
    a = p.parse_args(argv)

    import faiss
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    threads = torch.get_num_threads()
    embedders = {b: Embedder(backend=b, batch_size=a.batch_size) for b in a.backends}  # onnx threads = torch's
    print(f"threads: torch {threads}, faiss {faiss.omp_get_max_threads()}, cpus {os.cpu_count()}; load {os.getloadavg()}")
    rows, goals = [], []
    for spec in a.dataset or ["pydocs"]:
        ds = load_dataset(spec)
        speed = speed_rows(ds, embedders, a)
        if "static" in embedders and len(ds.corpus) > a.max_docs:
            goals.append(whole_corpus_goal(ds, embedders["static"]))
        if len(ds.corpus) > a.max_docs:
            ds = ds.subset(n_queries=len(ds.judged_queries()), n_other=a.max_docs)
        sub = quality_rows(ds, embedders, speed)
        rows += sub
        print_table(ds, sub)
        goals += goal_lines(ds.name, sub)
    print("\n" + "\n".join(goals))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2))
    return 0


def speed_rows(ds, embedders: dict, a) -> dict[str, dict]:
    """Return docs/s and single-query latency per backend on this dataset's texts (round-robin timing)."""
    texts = ds.corpus.embedding_texts()
    sample = texts[:: max(1, len(texts) // a.n)][: a.n]  # spread over the corpus (the dictionary is sorted by kind)
    print(f"\ndataset {ds.name}: {len(texts)} documents, {len(ds.judged_queries())} judged queries; speed on "
          f"{len(sample)} documents, batch size {a.batch_size}, {a.repeats} rounds (median)", flush=True)  # fmt: skip
    times = time_backends(embedders, sample, a.repeats, a.batch_size)
    queries = list(ds.judged_queries().values())
    queries = (queries * (a.latency_queries // max(1, len(queries)) + 1))[: a.latency_queries]
    out = {}
    for b, emb in embedders.items():
        lat = []
        for q in queries:
            t0 = time.perf_counter()
            emb.encode([q], progress=False)
            lat.append(time.perf_counter() - t0)
        out[b] = {"docs_per_s": len(sample) / statistics.median(times[b]), "query_ms": 1000 * statistics.median(lat),
                  "threads": emb.model.threads if hasattr(emb.model, "threads") else None, "n_timed": len(sample)}  # fmt: skip
    return out


def whole_corpus_goal(ds, emb: Embedder) -> str:
    """Embed (uncached) and index the whole corpus with the static model; return the goal line (<= 2 minutes)."""
    t0 = time.perf_counter()
    xb = emb.encode(ds.corpus.embedding_texts(), progress=False)
    index = VectorIndex.build(ds.corpus.ids, xb, "Flat", model_id=emb.model_id)
    secs = time.perf_counter() - t0
    ok = secs <= 120
    return (f"goal ({ds.name}: {len(index)} documents embedded by static and indexed (Flat) in <= 2 minutes): "
            f"{'met' if ok else 'NOT met'} ({secs:.1f} s)")


def systems(ds, embedders: dict) -> dict[str, tuple[str, callable]]:
    """Return ``{row name: (backend, search(queries) -> id lists)}`` for every system compared on ``ds``."""
    bm25 = BM25(ds.corpus.ids, ds.corpus.full_texts())
    engines = {}
    for b, emb in embedders.items():
        xb = emb.encode_cached(ds.corpus.embedding_texts(), progress=True)
        index = VectorIndex.build(ds.corpus.ids, xb, "Flat", model_id=emb.model_id)
        index.backend = b
        engines[b] = (SearchEngine(ds.corpus, emb, index, bm25), xb)
    out = {"BM25": ("bm25", lambda qs: [[d for d, _ in bm25.search(q, 10)] for q in qs])}
    for b, (engine, _) in engines.items():
        out[BACKENDS[b]] = (b, lambda qs, e=engine: [[h.id for h in hs] for hs in e.search_many(qs, 10, "dense")])
    if "static" in engines:
        e = engines["static"][0]
        out["static + BM25 hybrid (z-score)"] = ("static", lambda qs: [[h.id for h in hs] for hs in
                                                                     e.search_many(qs, 10, "hybrid", fusion="zscore")])  # fmt: skip
    if "static" in engines and "onnx-int8" in engines:
        out["two stages: static 100, int8 re-scores"] = ("static", lambda qs: two_stage(engines, ds, qs))
    return out


def two_stage(engines: dict, ds, queries: list[str], depth: int = 100) -> list[list[str]]:
    """Static retrieves ``depth`` candidates per query; the int8 vectors of query and documents re-rank them."""
    static, (int8, xb8) = engines["static"][0], engines["onnx-int8"]
    res = static.index.search(static.embedder.encode(queries, progress=False), depth)
    xq8 = int8.embedder.encode(queries, progress=False)
    out = []
    for q, ids in enumerate(res.ids):
        ids = [d for d in ids if d is not None and d != ""]
        rows = [ds.corpus.row(d) for d in ids]
        order = np.argsort(-(xb8[rows] @ xq8[q]), kind="stable")[:10]
        out.append([ids[i] for i in order])
    return out


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


def quality_rows(ds, embedders: dict, speed: dict) -> list[dict]:
    """Return one row per system: nDCG@10 and its paired difference from the reference, with speed for encoders."""
    queries = ds.judged_queries()
    qids = list(queries)
    texts = [queries[q] for q in qids]
    scores, backend_of = {}, {}
    for name, (backend, search) in systems(ds, embedders).items():
        run = {q: ids for q, ids in zip(qids, search(texts))}
        scores[name], backend_of[name] = per_query(run, ds.qrels, "ndcg@10", queries=qids), backend
    ref = BACKENDS["torch"] if "torch" in embedders else BACKENDS.get("onnx-int8", next(iter(scores)))
    rows = []
    for name, s in scores.items():
        c = paired_bootstrap(s, scores[ref])
        lo, hi = _ci(s)
        dense = name in {BACKENDS[b] for b in embedders}
        rows.append({"dataset": ds.name, "system": name, "backend": backend_of[name], "ndcg_at_10": float(np.mean(s)),
                     "ci_low": lo, "ci_high": hi, "reference": ref, "ndcg_diff": c.diff, "diff_low": c.low,
                     "diff_high": c.high, "p_value": c.p_value, "queries": c.n, "documents": len(ds.corpus),
                     **(speed[backend_of[name]] if dense else {})})  # fmt: skip
    return rows


def _ci(scores: np.ndarray, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Return the 95% bootstrap interval of the mean of ``scores``."""
    rng = np.random.default_rng(seed)
    means = scores[rng.integers(0, len(scores), (resamples, len(scores)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def print_table(ds, rows: list[dict]) -> None:
    """Print the dataset's table: speed of each encoder, nDCG@10 of each system, paired differences."""
    print(f"\n{ds.name} ({len(ds.corpus)} documents, {rows[0]['queries']} queries; reference {rows[0]['reference']})")
    print("| system | docs/s | query ms | nDCG@10 [95% CI] | Δ vs reference [95% CI], paired |\n|---|---:|---:|---|---|")
    for r in rows:
        speed = f"{r['docs_per_s']:,.0f} | {r['query_ms']:.2f}" if "docs_per_s" in r else "– | –"
        print(f"| {r['system']} | {speed} | {r['ndcg_at_10']:.4f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}] "
              f"| {r['ndcg_diff']:+.4f} [{r['diff_low']:+.4f}, {r['diff_high']:+.4f}] p={r['p_value']:.3g} |")  # fmt: skip


def goal_lines(name: str, rows: list[dict]) -> list[str]:
    """Return issue 28's goal lines that this dataset's rows decide (and the int8-default line)."""
    by = {r["system"]: r for r in rows}
    st, i8, bm = by.get(BACKENDS["static"]), by.get(BACKENDS["onnx-int8"]), by["BM25"]
    out = []
    if st and i8:
        x = st["docs_per_s"] / i8["docs_per_s"]
        out.append(f"goal ({name}: static >= 50x int8 docs/s): {'met' if x >= 50 else 'NOT met'} ({x:.0f}x: "
                   f"{st['docs_per_s']:,.0f} vs {i8['docs_per_s']:,.0f} docs/s)")  # fmt: skip
    if st and name == "pydocs":
        ok = st["ndcg_at_10"] >= bm["ndcg_at_10"]
        out.append(f"goal (pydocs: static dense >= BM25, nDCG@10): {'met' if ok else 'NOT met'} "
                   f"({st['ndcg_at_10']:.4f} vs {bm['ndcg_at_10']:.4f})")  # fmt: skip
    hy = by.get("static + BM25 hybrid (z-score)")
    if hy and i8 and name == "scifact":
        x = hy["ndcg_at_10"] / i8["ndcg_at_10"]
        out.append(f"goal (scifact: static+BM25 hybrid >= 0.95 x int8 dense): {'met' if x >= 0.95 else 'NOT met'} "
                   f"({hy['ndcg_at_10']:.4f} vs {i8['ndcg_at_10']:.4f}: {x:.3f}x)")  # fmt: skip
    return out


if __name__ == "__main__":
    raise SystemExit(main())
