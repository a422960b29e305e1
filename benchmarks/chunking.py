"""What chunking buys: long documents read as overlapping passages vs only their first 256 word pieces.

    python benchmarks/chunking.py                      # SciFact abstracts joined 6 at a time, all 5,183
    python benchmarks/chunking.py --per-doc 4 --keep 1500

The labeled set: SciFact (BEIR layout, found beside the project or via $SEARCHKIT_SCIFACT), its abstracts
shuffled (seeded) and joined ``--per-doc`` at a time into long documents; a long document is relevant to a
claim with the grade of the judged abstract it contains (SciFact's own human judgments, carried over).
Both systems use the same encoder and an exact (Flat) index; only what the index holds differs. Prints
nDCG@10 and Recall@100 with 95% bootstrap CIs, the paired difference, and the share of relevant abstracts
that start beyond the first window.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from searchkit.config import quick, scifact_dir  # noqa: E402
from searchkit.corpus.chunking import tokenizer_of  # noqa: E402
from searchkit.corpus.datasets import Corpus, concatenate_documents, load_beir  # noqa: E402
from searchkit.encoders.embed import Embedder  # noqa: E402
from searchkit.engine import SearchEngine  # noqa: E402
from searchkit.relevance.evaluate import System, evaluate_systems  # noqa: E402


def beyond_window(ds, source, embedder) -> float:
    """Return the share of judged (query, long document) pairs whose relevant abstract starts past the window."""
    tok, window = tokenizer_of(embedder)
    c, src = ds.corpus, source.corpus
    late = total = 0
    for q in ds.judged_queries():
        for d in source.qrels[q]:
            if d not in src or source.qrels[q][d] <= 0:
                continue
            head = f"{src.titles[src.row(d)]}\n{src.texts[src.row(d)]}".strip()
            for long_id in ds.qrels[q]:
                text = c.texts[c.row(long_id)]
                if head in text:
                    total += 1
                    before = text[: text.index(head)]
                    late += len(tok.encode(before, add_special_tokens=False).ids) >= window - 2
    return late / max(total, 1)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default=str(scifact_dir()), help="a BEIR folder (default: SciFact beside the project)")
    p.add_argument("--per-doc", type=int, default=6, help="abstracts joined into one long document (default 6)")
    p.add_argument("--keep", type=int, default=None, help="abstracts kept: judged ones first (default: all)")
    p.add_argument("--backend", default="onnx-int8", help="encoder backend (default onnx-int8, the fast one)")
    p.add_argument("--resamples", type=int, default=10_000, help="bootstrap resamples (default 10000)")
    a = p.parse_args(argv)
    keep = a.keep or (1200 if quick() else None)

    source = load_beir(a.dataset)
    ds = concatenate_documents(source, a.per_doc, seed=0, keep=keep)
    emb = Embedder(backend=a.backend)
    first = Corpus(ds.corpus.ids, ds.corpus.titles, ds.corpus.texts)  # not chunked: the model reads 256 pieces
    engines = {
        "first 256 word pieces": SearchEngine.build(first, emb, bm25=False, progress=True),
        "overlapping passages": SearchEngine.build(ds.corpus, emb, bm25=False, progress=True),
    }
    chunked = engines["overlapping passages"]
    abstracts = min(keep or len(source.corpus), len(source.corpus))
    print(f"{ds.name}: {abstracts:,} abstracts joined into {len(ds.corpus):,} long documents, {len(chunked.index):,} "
          f"passages; {len(ds.judged_queries())} judged claims; encoder {emb.model_id}")  # fmt: skip
    print(f"relevant abstracts starting beyond the first window: {beyond_window(ds, source, emb):.0%}")
    report = evaluate_systems([System(n, e) for n, e in engines.items()], ds, metrics=("ndcg@10", "recall@100"),
                              n_resamples=a.resamples, batch_size=32)  # fmt: skip
    print(report.table(latency=False))
    cmp = report.compare("overlapping passages", "first 256 word pieces")
    print(f"nDCG@10 gain from chunking: {cmp}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
