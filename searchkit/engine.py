"""The search engine: corpus + embedder + vector index (+ BM25), answering queries with documents."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from .cache import QueryCache, cache_key, normalize_query
from .datasets import Corpus
from .embed import Embedder, default_embedder
from .errors import InputError
from .fusion import FUSIONS, fuse
from .index import VectorIndex
from .lexical import BM25

Mode = Literal["dense", "bm25", "hybrid"]
MODES: tuple[str, ...] = ("dense", "bm25", "hybrid")


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
        self.cache: QueryCache | None = None  # query-embedding cache (searchkit.cache), set by the app
        self.search_params = None  # faiss.SearchParameters passed to every vector search (nprobe, efSearch)
        # hybrid mode: fuse the top `hybrid_depth` of BM25 and of dense search ("rrf", "minmax" or "zscore")
        self.fusion, self.rrf_k, self.hybrid_depth = "rrf", 60, 100
        self.hybrid_weights: tuple[float, float] | None = None  # (bm25, dense); None = equal

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

    def search(
        self, query: str, k: int = 10, mode: Mode = "dense", prefix: str | None = None, fusion: str | None = None
    ) -> list[Hit]:
        """Return the top ``k`` hits for ``query`` by ``mode`` (dense, bm25, hybrid), ids starting with ``prefix``."""
        return self.search_many([query], k, mode, prefix=prefix, fusion=fusion)[0]

    def encode_queries(self, queries: list[str], stats: dict | None = None) -> np.ndarray:
        """Embed ``queries`` as ``(n, dim)`` float32, reusing ``self.cache``; fill ``stats`` (embed_ms, cached)."""
        t0 = time.perf_counter()
        texts = [normalize_query(q) for q in queries]
        xq = np.empty((len(texts), self.embedder.dim), dtype=np.float32)
        cached = [False] * len(texts)
        keys = [cache_key(self.embedder.model_id, t) for t in texts] if self.cache is not None else []
        for i, key in enumerate(keys):
            vec = self.cache.get(key, self.embedder.dim)  # type: ignore[union-attr]
            if vec is not None:
                xq[i], cached[i] = vec, True
        todo = [i for i, hit in enumerate(cached) if not hit]
        if todo:
            xq[todo] = self.embedder.encode([texts[i] for i in todo])
            for i in todo if self.cache is not None else []:
                self.cache.put(keys[i], xq[i])  # type: ignore[union-attr]
        if stats is not None:
            stats["embed_ms"] = stats.get("embed_ms", 0.0) + (time.perf_counter() - t0) * 1000
            stats["cached"] = cached
        return xq

    def search_many(
        self,
        queries: list[str],
        k: int = 10,
        mode: Mode = "dense",
        stats: dict | None = None,
        prefix: str | None = None,
        fusion: str | None = None,
    ) -> list[list[Hit]]:
        """Answer several queries at once (one encoder call for all of them)."""
        for i, q in enumerate(queries):
            if not isinstance(q, str) or not q.strip():
                raise InputError(f"query {i} is {q!r}: give a non-empty string")
        if mode == "dense":
            xq = self.encode_queries(queries, stats)
            res = self.index.search(xq, k, params=self.search_params, prefix=prefix)
            return [self._hits(zip(ids, scores)) for ids, scores in zip(res.ids, res.scores)]
        if mode == "bm25":
            if self.bm25 is None:
                raise InputError("this engine has no BM25 index: build it with bm25=True")
            mask = None if prefix is None else np.array([d.startswith(prefix) for d in self.bm25.ids])
            return [self._hits(self.bm25.search(q, k, mask=mask)) for q in queries]
        if mode == "hybrid":
            return self._hybrid(queries, k, fusion or self.fusion, stats, prefix)
        raise InputError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")

    def _hybrid(
        self, queries: list[str], k: int, fusion: str, stats: dict | None, prefix: str | None
    ) -> list[list[Hit]]:
        """Fuse the top ``hybrid_depth`` BM25 and dense results of each query (searchkit.fusion)."""
        if self.bm25 is None:
            raise InputError("hybrid mode needs a BM25 index: build the engine with bm25=True")
        if fusion not in FUSIONS:
            raise InputError(f"unknown fusion {fusion!r}: choose one of {', '.join(FUSIONS)}")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be a positive integer, got {k!r}")
        depth = max(int(k), int(self.hybrid_depth))
        xq = self.encode_queries(queries, stats)
        dense = self.index.search(xq, depth, params=self.search_params, prefix=prefix)
        mask = None if prefix is None else np.array([d.startswith(prefix) for d in self.bm25.ids])
        out = []
        for q, ids, scores in zip(queries, dense.ids, dense.scores):
            lists = [self.bm25.search(q, depth, mask=mask), list(zip(ids, scores))]
            out.append(self._hits(fuse(lists, fusion, self.hybrid_weights, limit=int(k), rrf_k=self.rrf_k)))
        return out

    def similarity(self, a: str, b: str) -> float:
        """Return the cosine similarity of two texts."""
        va, vb = self.embedder.encode([a, b])
        return float(np.dot(va, vb))
