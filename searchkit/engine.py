"""The search engine: corpus + embedder + vector index (+ BM25), answering queries with documents."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from .datasets import Corpus
from .embed import Embedder, default_embedder
from .errors import InputError
from .index import VectorIndex
from .lexical import BM25

Mode = Literal["dense", "bm25"]
MODES: tuple[str, ...] = ("dense", "bm25")


@dataclass
class Hit:
    """One search result."""

    id: str
    score: float
    title: str
    text: str

    def to_dict(self) -> dict:
        """Return the hit as a plain dict (for JSON)."""
        return asdict(self)


class SearchEngine:
    """Answer text queries over a corpus with dense vectors, BM25, or both."""

    def __init__(self, corpus: Corpus, embedder: Embedder, index: VectorIndex, bm25: BM25 | None = None):
        if index.model_id not in (None, embedder.model_id):
            raise InputError(
                f"index was built with model {index.model_id!r} but the embedder is {embedder.model_id!r}: "
                "use the same model for both"
            )
        self.corpus, self.embedder, self.index, self.bm25 = corpus, embedder, index, bm25

    @classmethod
    def build(
        cls,
        corpus: Corpus,
        embedder: Embedder | None = None,
        factory: str = "Flat",
        bm25: bool = True,
        progress: bool | None = None,
    ) -> SearchEngine:
        """Embed ``corpus`` (cached on disk), index it with faiss ``factory`` and, if asked, BM25."""
        embedder = embedder or default_embedder()
        xb = embedder.encode_cached(corpus.embedding_texts(), progress=progress)
        index = VectorIndex(embedder.dim, factory, model_id=embedder.model_id)
        if not index.is_trained:
            index.train(xb)
        index.add(corpus.ids, xb)
        lexical = BM25(corpus.ids, corpus.full_texts()) if bm25 else None
        return cls(corpus, embedder, index, lexical)

    def __repr__(self) -> str:
        return f"SearchEngine({len(self.corpus)} docs, index={self.index.factory!r}, model={self.embedder.model_id!r})"

    def _hits(self, pairs) -> list[Hit]:
        c = self.corpus
        out = []
        for doc_id, score in pairs:
            i = c.row(doc_id)
            out.append(Hit(doc_id, float(score), c.titles[i], c.texts[i]))
        return out

    def search(self, query: str, k: int = 10, mode: Mode = "dense") -> list[Hit]:
        """Return the top ``k`` hits for ``query`` using ``mode`` ("dense" or "bm25")."""
        return self.search_many([query], k, mode)[0]

    def search_many(self, queries: list[str], k: int = 10, mode: Mode = "dense") -> list[list[Hit]]:
        """Answer several queries at once (one encoder call for all of them)."""
        for i, q in enumerate(queries):
            if not isinstance(q, str) or not q.strip():
                raise InputError(f"query {i} is {q!r}: give a non-empty string")
        if mode == "dense":
            xq = self.embedder.encode(queries)
            res = self.index.search(xq, k)
            return [self._hits(zip(ids, scores)) for ids, scores in zip(res.ids, res.scores)]
        if mode == "bm25":
            if self.bm25 is None:
                raise InputError("this engine has no BM25 index: build it with bm25=True")
            return [self._hits(self.bm25.search(q, k)) for q in queries]
        raise InputError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")

    def similarity(self, a: str, b: str) -> float:
        """Return the cosine similarity of two texts."""
        va, vb = self.embedder.encode([a, b])
        return float(np.dot(va, vb))
