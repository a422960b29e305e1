"""Compressed indexes: bytes per vector against recall@10 (with and without re-ranking), latency and nDCG@10.

    python benchmarks/quantization.py --n 200000 [--json OUT] [--beir DIR] [--threads 1]
    python benchmarks/quantization.py --n 1000000 --skip pydocs beir --ratio 10 20 50 --configs "IVF1024,PQ48" ...

Datasets: N SYNTHETIC vectors shaped like the Python-docs MiniLM embeddings (searchkit.corpus.synthetic), then the
real Python-docs embeddings and SciFact (``--beir``, default ../shared/beir/scifact beside the project when present).
Per configuration: bytes_per_vector = the serialized faiss index size / N (codes, ids, codebooks and centroids:
what the index costs in RAM); recall@10 against exact search, plain and re-ranked (the top 10 x ratio
candidates re-scored with the float vectors read from a memory-mapped file on disk, not held in RAM);
p50/p99 single-query latency of the re-ranked search (Flat: plain); build seconds (train + add);
nDCG@10 of the re-ranked results against the judgments (real data only). ``--ratio`` takes several values
(the number of re-ranked candidates is the strongest lever): each configuration is measured at each. The goal
line asks for <= 64 bytes/vector with re-ranked recall@10 >= 0.90 on the synthetic vectors.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import faiss
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from searchkit.config import quick, scifact_dir  # noqa: E402
from searchkit.index.sizing import suggest_nlist  # noqa: E402
from searchkit.measure.bench import measure_codecs  # noqa: E402
from searchkit.measure.report import format_table  # noqa: E402

DEFAULT_BEIR = scifact_dir()  # ../shared/beir/scifact beside the project, or $SEARCHKIT_SCIFACT
KEYS = ["index", "ratio", "bytes_per_vector", "recall_at_10", "recall_at_10_reranked", "p50_ms", "p99_ms", "build_s", "ndcg_at_10"]


def configurations(n: int, pq_m: list[int]) -> list[str]:
    """Return the configurations benchmarked at ``n`` vectors."""
    nlist = suggest_nlist(n, per_sqrt=1.0)
    out = ["Flat", "SQfp16", "SQ8", f"IVF{nlist},SQ8"]
    out += [f"PQ{m}" for m in pq_m[:1]]
    out += [f"IVF{nlist},PQ{m}" for m in pq_m]
    out += [f"OPQ{pq_m[-1]},IVF{nlist},PQ{pq_m[-1]}"]
    return out + ["int8", "Binary", "Binary,rescore=signs"]


def run_dataset(name, xb, xq, ids, qrels, qids, args) -> list[dict]:
    """Benchmark every configuration on database ``xb`` and queries ``xq``; print and return the rows."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "originals.npy"
        np.save(path, xb)
        originals = np.load(path, mmap_mode="r")  # the float copy stays on disk; candidates are read from it
        rows = []
        for factory in args.configs or configurations(len(xb), args.pq):  # one build per factory, every ratio on it
            for row in measure_codecs(
                [factory], xb, xq, ids, originals, qrels, qids, ratio=args.ratio, nprobe=args.nprobe,
                max_train=args.max_train, timing_queries=args.timing_queries,
            ):  # fmt: skip
                row = {"dataset": name, **row}
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def goal_line(rows: list[dict]) -> str:
    """Return whether a synthetic row has <= 64 bytes/vector and re-ranked recall@10 >= 0.90, or the shortfall."""
    small = [r for r in rows if "SYNTHETIC" in r["dataset"] and r["bytes_per_vector"] <= 64 and r["index"] != "Flat"]
    if not small:
        return "goal (<= 64 bytes/vector, re-ranked recall@10 >= 0.90): no synthetic configuration of <= 64 bytes/vector ran"
    best = max(small, key=lambda r: r["recall_at_10_reranked"])
    ok = best["recall_at_10_reranked"] >= 0.90
    verdict = "met" if ok else f"NOT met (short by {0.90 - best['recall_at_10_reranked']:.3f})"
    return (f"goal (<= 64 bytes/vector, re-ranked recall@10 >= 0.90): {verdict}: {best['index']} "
            f"{best['bytes_per_vector']:.1f} B/vector, ratio {best['ratio']}, recall@10 {best['recall_at_10_reranked']:.3f}")


def real_dataset(spec: str, embedder):
    """Return (name, xb, xq, qrels, qids, doc_ids) for ``pydocs`` or a BEIR folder."""
    from searchkit.corpus.datasets import load_beir
    from searchkit.corpus.pydocs import load_pydocs

    ds = load_pydocs() if spec == "pydocs" else load_beir(spec)
    queries = ds.judged_queries()
    qids = list(queries)
    xb = embedder.encode_cached(ds.corpus.embedding_texts())
    xq = embedder.encode([queries[q] for q in qids], progress=False)
    return ds.name, xb, xq, {q: ds.qrels[q] for q in qids}, qids, list(ds.corpus.ids)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000 if quick() else 200_000, help="synthetic database size")
    parser.add_argument("--queries", type=int, default=1000, help="synthetic queries (recall is averaged over them)")
    parser.add_argument("--timing-queries", type=int, default=200, help="single queries timed per configuration")
    parser.add_argument("--ratio", type=int, nargs="+", default=[10], help="re-ranking: candidates fetched per result (several: a sweep)")
    parser.add_argument("--nprobe", type=int, default=None, help="IVF lists probed (default max(16, nlist/16))")
    parser.add_argument("--pq", type=int, nargs="+", default=[48, 32], help="PQ sub-quantizer counts")
    parser.add_argument("--configs", nargs="+", default=None, help="only these configurations (factory strings)")
    parser.add_argument("--max-train", type=int, default=10_000, help="training sample size")
    parser.add_argument("--threads", type=int, default=1, help="faiss threads (1 = stable timings on shared cores)")
    parser.add_argument("--beir", type=Path, default=DEFAULT_BEIR if DEFAULT_BEIR.is_dir() else None)
    parser.add_argument("--skip", nargs="*", default=[], choices=["synthetic", "pydocs", "beir"])
    parser.add_argument("--json", type=Path, default=None, help="write all rows to this JSON file")
    args = parser.parse_args(argv)
    faiss.omp_set_num_threads(args.threads)
    print(
        f"# faiss {faiss.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs, "
        f"{platform.processor() or platform.machine()}; "
        f"re-rank ratio {args.ratio}, training sample <= {args.max_train}",
        flush=True,
    )
    rows: list[dict] = []

    if "synthetic" not in args.skip:
        from searchkit.corpus.synthetic import synthetic_embeddings

        xb = synthetic_embeddings(args.n, seed=0)
        xq = synthetic_embeddings(args.queries, seed=1)
        rows += run_dataset(f"synthetic-{args.n} (SYNTHETIC)", xb, xq, None, None, None, args)
        del xb
    specs = [] if "pydocs" in args.skip else ["pydocs"]
    if args.beir is not None and "beir" not in args.skip:
        specs.append(str(args.beir))
    if specs:
        from searchkit.encoders.embed import default_embedder

        embedder = default_embedder()
        for spec in specs:
            name, xb, xq, qrels, qids, doc_ids = real_dataset(spec, embedder)
            rows += run_dataset(name, xb, xq, doc_ids, qrels, qids, args)
    print()
    print(format_table(rows, ["dataset", *KEYS], digits=4, markdown=True))
    print(goal_line(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
