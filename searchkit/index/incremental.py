"""Build a saved index for a corpus, and on later builds re-embed only what changed.

The manifest (:class:`searchkit.index.manifest.IndexManifest`) keeps each document's content hash and passage
count under ``sources``. Building the same corpus into the same folder again embeds only new or changed
documents, drops deleted ones, keeps the rest, and saves atomically (old or new index, never half).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from searchkit.corpus.chunking import OVERLAP, Passages, passages_for, whole_documents
from searchkit.corpus.datasets import Corpus
from searchkit.encoders.embed import Embedder
from searchkit.errors import SearchIndexError
from searchkit.index.manifest import MANIFEST
from searchkit.index.sizing import IndexSpec
from searchkit.index.vector import VectorIndex

CHUNKING = f"chunk-v1:overlap={OVERLAP}"  # part of every content hash: new chunking rules re-embed everything


@dataclass
class BuildReport:
    """What a build did: documents embedded, kept from the last build, and dropped; passages in the index."""

    embedded: int
    kept: int
    dropped: int
    passages: int
    factory: str
    fresh: bool  # True when built from scratch (no usable earlier index)

    def __str__(self) -> str:
        how = "built" if self.fresh else "updated"
        return (f"{how} {self.factory} index: {self.embedded} documents embedded, {self.kept} unchanged, "
                f"{self.dropped} dropped; {self.passages} passages")  # fmt: skip


def content_hash(text: str) -> str:
    """Return the sha256 that decides whether a document must be embedded again."""
    return hashlib.sha256(f"{CHUNKING}\0{text}".encode("utf-8", "surrogatepass")).hexdigest()


def _previous(folder: Path, embedder: Embedder, factory: str | None) -> VectorIndex | None:
    """Return the index saved in ``folder`` if an incremental build can extend it, else None."""
    if not (folder / MANIFEST).is_file():
        return None
    try:
        old = VectorIndex.load(folder, embedder.model_id, embedder.dim, model_sha256=getattr(embedder, "model_sha256", None))
    except SearchIndexError:
        return None  # another model, or damaged: build from scratch (the save replaces it atomically)
    if old.sources is None or old.backend != getattr(embedder, "backend", None):
        return None  # no state to extend, or vectors from another encoder backend: do not mix them
    if factory is not None and old.factory != factory:
        return None
    return old


def _passage_ids(doc_id: str, n: int) -> list[str]:
    return [doc_id] if n == 1 else [f"{doc_id}#{j}" for j in range(1, n + 1)]


def build_corpus_index(
    corpus: Corpus,
    folder: str | Path,
    embedder: Embedder,
    factory: str | IndexSpec | None = None,
    choose: Callable[[np.ndarray, list[str]], IndexSpec | VectorIndex] | None = None,
    progress: bool | None = None,
) -> BuildReport:
    """Build (or update) the index of ``corpus`` in ``folder``; return what was embedded, kept and dropped.

    ``factory`` fixes the index type (a different one than saved means a fresh build); else ``choose(xb, ids)``
    picks it on a fresh build (e.g. under a budget, :func:`searchkit.index.budget.choose_index`); else Flat.
    An update keeps the saved index's type.
    """
    folder = Path(folder)
    name = factory.factory if isinstance(factory, IndexSpec) else factory
    passages = passages_for(corpus, embedder) or whole_documents(corpus)
    counts: dict[int, int] = {}
    for row in passages.rows:
        counts[row] = counts.get(row, 0) + 1
    hashes = [content_hash(t) for t in corpus.embedding_texts()]
    sources = {d: {"sha256": h, "passages": counts[i]} for i, (d, h) in enumerate(zip(corpus.ids, hashes))}
    old = _previous(folder, embedder, name)
    if old is None:
        index = _fresh(passages, embedder, factory, choose, progress)
        index.backend = getattr(embedder, "backend", None)
        index.scheme = getattr(getattr(embedder, "model", None), "scheme", None)
        index.model_sha256 = getattr(embedder, "model_sha256", None)
        index.save(folder, sources)
        return BuildReport(len(corpus), 0, 0, len(index), index.factory, True)
    before = old.sources or {}
    changed = [i for i, d in enumerate(corpus.ids) if d not in before or before[d].sha256 != hashes[i]]
    gone = [d for d in before if d not in sources]
    redo = gone + [corpus.ids[i] for i in changed if corpus.ids[i] in before]
    stale = [p for d in redo for p in _passage_ids(d, before[d].passages)]
    if stale:
        old.remove(stale, rebuild=True)
    todo = set(changed)
    js = [j for j, row in enumerate(passages.rows) if row in todo]
    if js:
        old.add([passages.ids[j] for j in js], embedder.encode([passages.texts[j] for j in js], progress=progress))
    old.model_sha256 = getattr(embedder, "model_sha256", None)  # same model (checked on load): record its hash
    old.save(folder, sources)
    return BuildReport(len(changed), len(corpus) - len(changed), len(gone), len(old), old.factory, False)


def _fresh(passages: Passages, embedder: Embedder, factory, choose, progress) -> VectorIndex:
    """Embed every passage and build the index: ``factory``, else what ``choose`` picks, else Flat."""
    xb = embedder.encode_cached(passages.texts, progress=progress)  # a rebuild from scratch reuses the disk cache
    if factory is None and choose is not None:
        picked = choose(xb, passages.ids)
        if isinstance(picked, VectorIndex):
            picked.model_id = embedder.model_id
            return picked
        factory = picked
    return VectorIndex.build(passages.ids, xb, factory or "Flat", model_id=embedder.model_id)
