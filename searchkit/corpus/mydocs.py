"""The course's sample folder ``data/mydocs`` with its judged queries (``data/mydocs-judged``), as a Dataset."""

from __future__ import annotations

from pathlib import Path

from searchkit.config import DATA_DIR
from searchkit.corpus.datasets import Dataset, read_qrels, read_queries
from searchkit.corpus.loaders import load_folder
from searchkit.errors import DatasetError

MYDOCS_DIR = DATA_DIR / "mydocs"
MYDOCS_JUDGED = DATA_DIR / "mydocs-judged"


def load_mydocs_judged(folder: str | Path = MYDOCS_DIR, judged: str | Path = MYDOCS_JUDGED) -> Dataset:
    """Return ``data/mydocs`` (files, ids = paths relative to it) with its judged test queries (file level)."""
    judged = Path(judged)
    queries, qrels = judged / "queries.jsonl", judged / "qrels" / "test.tsv"
    missing = [str(p) for p in (queries, qrels) if not p.is_file()]
    if missing:
        raise DatasetError(f"{', '.join(missing)} missing: the judged queries of {folder} live in {judged}")
    ds = load_folder(folder, quiet=True)
    rels = read_qrels(qrels)
    unknown = sorted({d for docs in rels.values() for d in docs if d not in ds.corpus})
    if unknown:
        raise DatasetError(f"{qrels} judges {unknown[0]!r}, which is not a file of {folder}: fix the judgment")
    qs = {q: t for q, t in read_queries(queries).items() if q in rels}
    return Dataset("mydocs", ds.corpus, qs, rels, "test")
