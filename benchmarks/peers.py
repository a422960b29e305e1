"""searchkit beside txtai (the peer a user would pick instead): same model, same threads, same documents, one client.

    python benchmarks/peers.py [--dataset ../shared/beir/scifact] [--n-docs 2000] [--queries 200] [--json OUT]

Skipped with one line when txtai is not installed (``pip install txtai``; it is no dependency of searchkit).
Both index the first ``--n-docs`` SciFact documents with all-MiniLM-L6-v2 (the packaged copy). Rows:
in-process dense search, one query per call (txtai ``Embeddings.search`` vs ``SearchEngine.search`` with the
PyTorch and the int8 encoder, no query cache); and over HTTP from one keep-alive client, first with distinct
queries (uncached), then the same queries again (repeated). txtai's own API needs its "api" extra, so its side
is served by a FastAPI route that does what that API's ``GET /search`` does (``embeddings.search(query,
limit)``, ids and scores back); searchkit's side is its app, with full text and with ``snippet=0``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from searchkit.config import scifact_dir  # noqa: E402
from searchkit.measure.report import format_table  # noqa: E402


def timed(fn, items: list) -> dict:
    """Call ``fn`` on each item after 5 warm-up calls; return p50/p99 ms and the mean bytes ``fn`` returned."""
    for x in items[:5]:
        fn(x)
    lat, size = [], []
    for x in items:
        t0 = time.perf_counter()
        n = fn(x)
        lat.append((time.perf_counter() - t0) * 1000)
        size.append(n or 0)
    p50, p99 = np.percentile(lat, [50, 99])
    return {"p50_ms": float(p50), "p99_ms": float(p99), "kb_per_answer": float(np.mean(size)) / 1024}


def txtai_app(embeddings):
    """Return a FastAPI app whose ``GET /search?query=&limit=`` answers like txtai's API (ids and scores)."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/search")
    def search(query: str, limit: int = 10) -> list[dict]:
        return [{"id": i, "score": float(s)} for i, s in embeddings.search(query, limit)]

    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=str(scifact_dir()), help="a BEIR folder (default: SciFact beside the project)")
    p.add_argument("--n-docs", type=int, default=2000, help="documents indexed by both (default 2000; 0: all)")
    p.add_argument("--queries", type=int, default=200, help="queries timed per row (default 200)")
    p.add_argument("--threads", type=int, default=1, help="torch/onnxruntime/faiss threads for both (default 1)")
    p.add_argument("--json", help="write the rows to this JSON file")
    a = p.parse_args(argv)
    try:
        from txtai import Embeddings
    except ImportError:
        print("skipped: txtai is not installed (pip install txtai to compare with it)")
        return 0
    import httpx

    from searchkit.corpus.datasets import Corpus, load_beir
    from searchkit.encoders.embed import Embedder
    from searchkit.encoders.models import resolve_model
    from searchkit.engine import SearchEngine
    from searchkit.serving.server import BackgroundServer, serve_in_background
    from searchkit.threads import set_compute_threads

    set_compute_threads(a.threads)  # before the encoders load: onnxruntime fixes its threads at start
    ds = load_beir(a.dataset)
    n = a.n_docs or len(ds.corpus)
    c = ds.corpus
    docs = Corpus(c.ids[:n], c.titles[:n], c.texts[:n])
    queries = list(ds.queries.values())[: a.queries]
    t0 = time.perf_counter()
    tx = Embeddings(path=resolve_model()[1], content=False)
    tx.index([(i, t, None) for i, t in zip(docs.ids, docs.embedding_texts())])
    print(f"txtai indexed {n} documents in {time.perf_counter() - t0:.0f} s", flush=True)
    engines = {b: SearchEngine.build(docs, Embedder(backend=b), bm25=False, progress=False) for b in ("torch", "onnx-int8")}
    rows = [{"system": "txtai (torch)", "where": "in-process", **timed(lambda q: tx.search(q, 10) and 0, queries)}]
    for b, eng in engines.items():
        rows.append({"system": f"searchkit ({b})", "where": "in-process", **timed(lambda q, e=eng: e.search(q, 10) and 0, queries)})
    peer = BackgroundServer(txtai_app(tx)).start()
    mine = serve_in_background(engines["onnx-int8"])
    variants = {"full text": ({}, queries), "snippet=0": ({"snippet": 0}, [f"{q} please" for q in queries])}
    try:
        with httpx.Client(timeout=30) as http:
            for kind in ("uncached", "repeated"):  # the second pass asks the same queries again
                ask = lambda q: len(http.get(f"{peer.url}/search", params={"query": q, "limit": 10}).content)  # noqa: E731
                rows.append({"system": "txtai (torch)", "where": f"HTTP {kind}", **timed(ask, queries)})
                for label, (extra, qs) in variants.items():
                    ask = lambda q, x=extra: len(http.post(f"{mine.url}/search", json={"query": q, "top_k": 10, **x}).content)  # noqa: E731
                    rows.append({"system": f"searchkit (onnx-int8, {label})", "where": f"HTTP {kind}", **timed(ask, qs)})
    finally:
        peer.stop()
        mine.stop()
    print(f"\n{len(queries)} queries per row, one client, {a.threads} thread(s), {n} {ds.name} documents, top 10")
    print(format_table(rows, digits=2))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
