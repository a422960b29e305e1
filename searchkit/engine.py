"""The search engine: corpus + embedder + vector index (+ BM25), answering queries with documents.

How to search travels with each call as a frozen :class:`SearchSettings`; every call returns an
:class:`EngineResult` (hits, per-stage timings, cache flags), so two configurations can share one engine.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from searchkit.corpus.chunking import Passages, passages_for
from searchkit.corpus.datasets import Corpus
from searchkit.encoders.embed import Embedder, default_embedder
from searchkit.encoders.models import check_same_space
from searchkit.errors import InputError, SearchIndexError
from searchkit.index.base import Index
from searchkit.index.vector import VectorIndex
from searchkit.relevance.fusion import Fusion, check_fusion, fuse
from searchkit.relevance.lexical import BM25
from searchkit.validation import check_positive_int, check_queries, normalize_query

if TYPE_CHECKING:
    from searchkit.relevance.rerank import Reranker
    from searchkit.serving.cache import QueryCache, ResultCache

Mode = Literal["dense", "bm25", "hybrid"]
MODES: tuple[str, ...] = get_args(Mode)
_NO_BM25 = {
    "bm25": "this engine has no BM25 index: build it with bm25=True",
    "hybrid": "hybrid mode needs a BM25 index: build the engine with bm25=True",
}


@dataclass(frozen=True)
class SearchSettings:
    """How to answer a query: mode, fusion of BM25 and dense lists (hybrid), and faiss search parameters.

    The one shape of search settings: the engine's defaults, each experiment arm, and every tuned fusion
    (``data/pydocs/fusion.json``, via :meth:`from_dict`/:meth:`to_dict`) are one of these.
    """

    mode: Mode = "dense"
    fusion: Fusion = "rrf"
    weights: tuple[float, float] | None = None  # hybrid: (bm25, dense) weights; None = equal
    rrf_k: int = 60  # the k of reciprocal rank fusion
    hybrid_depth: int = 100  # hybrid: fuse the top hybrid_depth of each list
    nprobe: int | None = None  # IVF cells visited (None: the index's own setting)
    ef_search: int | None = None  # HNSW candidate list size (None: the index's own setting)
    rerank_depth: int | None = None  # re-order the first rerank_depth hits with the engine's cross-encoder; None: off

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise InputError(f"unknown mode {self.mode!r}: choose one of {', '.join(MODES)}")
        check_fusion(self.fusion)
        if self.weights is not None:
            w = tuple(float(x) for x in self.weights)
            if len(w) != 2 or not all(np.isfinite(w)) or min(w) < 0 or sum(w) <= 0:
                raise InputError(f"weights must be two non-negative numbers (bm25, dense), not both 0, got {self.weights!r}")
            object.__setattr__(self, "weights", w)
        if isinstance(self.rrf_k, bool) or not isinstance(self.rrf_k, (int, np.integer)) or self.rrf_k < 0:
            raise InputError(f"rrf_k must be an integer >= 0 (60 is usual), got {self.rrf_k!r}")
        check_positive_int("hybrid_depth", self.hybrid_depth)
        check_positive_int("rerank_depth", self.rerank_depth, none_ok=True, hint="hits re-ordered, e.g. 50; None: off")

    def with_(self, mode: Mode | None = None, fusion: Fusion | None = None, **changes) -> SearchSettings:
        """Return a copy with ``mode`` and ``fusion`` replaced where given (None keeps this one's) and other ``changes``."""
        return replace(self, mode=mode or self.mode, fusion=fusion or self.fusion, **changes)

    def with_fusion_of(self, other: SearchSettings) -> SearchSettings:
        """Return a copy fusing as ``other`` does (fusion, weights, RRF k, depth); mode and faiss settings kept."""
        return self.with_(fusion=other.fusion, weights=other.weights, rrf_k=other.rrf_k, hybrid_depth=other.hybrid_depth)

    def fuse(self, lists: list, limit: int) -> list[tuple[str, float]]:
        """Fuse ranked ``(doc_id, score)`` lists (BM25, dense) as hybrid mode does: top ``hybrid_depth`` of each."""
        depth = max(int(limit), int(self.hybrid_depth))
        return fuse([r[:depth] for r in lists], self.fusion, self.weights, limit=int(limit), rrf_k=self.rrf_k)

    def __str__(self) -> str:
        """Return the fusion part as tune-fusion prints it: ``rrf, k=10, weights bm25 0.05 / dense 0.95``."""
        w = self.weights or (1.0, 1.0)
        k = f", k={self.rrf_k}" if self.fusion == "rrf" else ""
        return f"{self.fusion}{k}, weights bm25 {w[0]:g} / dense {w[1]:g}"

    def to_dict(self) -> dict:
        """Return the fusion part as the JSON object of ``fusion.json``: ``fusion``, ``weights``, ``rrf_k``, ``depth``."""
        w = list(self.weights) if self.weights is not None else None
        return {"fusion": self.fusion, "weights": w, "rrf_k": self.rrf_k, "depth": self.hybrid_depth}

    @classmethod
    def from_dict(cls, d: dict) -> SearchSettings:
        """Make settings from a ``fusion.json`` config object (:meth:`to_dict`; ``depth`` is ``hybrid_depth``)."""
        if not isinstance(d, dict):
            raise InputError(f"a fusion config is a JSON object, got {type(d).__name__}")
        w = d.get("weights")
        if w is not None and (isinstance(w, (str, bytes)) or not hasattr(w, "__len__")):
            raise InputError(f"weights must be two non-negative numbers (bm25, dense), not both 0, got {w!r}")
        return cls(fusion=d.get("fusion", "rrf"), weights=None if w is None else tuple(w),
                   rrf_k=int(d.get("rrf_k", 60)), hybrid_depth=int(d.get("depth", 100)))  # fmt: skip


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


@dataclass(frozen=True)
class StageTimings:
    """Where the time of one call went, in milliseconds: query embedding (or cache lookup), search, re-ranking
    (0 when off), whole call."""

    embed_ms: float
    search_ms: float
    total_ms: float
    rerank_ms: float = 0.0

    def as_dict(self, digits: int = 3) -> dict[str, float]:
        """Return ``{"embed", "search", "rerank", "total"}`` in ms, rounded to ``digits`` decimals."""
        return {"embed": round(self.embed_ms, digits), "search": round(self.search_ms, digits),
                "rerank": round(self.rerank_ms, digits), "total": round(self.total_ms, digits)}  # fmt: skip


@dataclass(frozen=True)
class EngineResult:
    """The answer to a batch of queries: hits per query, timings, and which query vectors came from the cache.

    ``partial`` and ``failed_shards`` say when an index split into shards answered without some of them.
    """

    hits: list[list[Hit]]
    timings: StageTimings
    cached: list[bool]
    partial: bool = False
    failed_shards: tuple[int, ...] = field(default=())
    result_cached: bool = False  # every answer came from the result cache: no encoder call, no index search


class SearchEngine:
    """Answer text queries over a corpus with dense vectors, BM25, or both (and a cross-encoder re-ranking them)."""

    def __init__(
        self, corpus: Corpus, embedder: Embedder, index: Index, bm25: BM25 | None = None,
        passages: Passages | None = None, reranker: Reranker | None = None,
    ):  # fmt: skip
        if index.model_id not in (None, embedder.model_id):
            raise SearchIndexError(
                f"index was built with model {index.model_id!r} but the embedder is {embedder.model_id!r}: "
                "use the same model for both (rebuild the index with this embedder, or load that model)"
            )
        check_same_space(getattr(index, "backend", None), getattr(embedder, "backend", None))
        self.corpus, self.embedder, self.index, self.bm25 = corpus, embedder, index, bm25
        self.passages = passages  # long documents split for the encoder (the index holds passages); None: one vector each
        self.reranker = reranker  # second stage for SearchSettings(rerank_depth=...) (searchkit.relevance.rerank)
        self.cache: QueryCache | None = None  # query-embedding cache (searchkit.serving.cache), set by the app
        self.results: ResultCache | None = None  # whole answers of repeated queries (searchkit.serving.cache), set by the app
        self.defaults = SearchSettings()  # what a call without settings uses (load_engine: the corpus's tuned fusion)

    @classmethod
    def build(
        cls,
        corpus: Corpus,
        embedder: Embedder | None = None,
        factory: str = "Flat",
        bm25: bool = True,
        progress: bool | None = None,
    ) -> SearchEngine:
        """Embed ``corpus`` (cached on disk; long documents as passages if ``corpus.chunked``), index it, and BM25."""
        embedder = embedder or default_embedder()
        passages = passages_for(corpus, embedder)
        ids, texts = (passages.ids, passages.texts) if passages else (corpus.ids, corpus.embedding_texts())
        xb = embedder.encode_cached(texts, progress=progress)
        index = VectorIndex.build(ids, xb, factory, model_id=embedder.model_id)
        index.backend = embedder.backend
        index.scheme = getattr(embedder.model, "scheme", None)
        lexical = BM25(corpus.ids, corpus.full_texts()) if bm25 else None
        return cls(corpus, embedder, index, lexical, passages)

    def __repr__(self) -> str:
        return f"SearchEngine({len(self.corpus)} docs, index={self.index.factory!r}, model={self.embedder.model_id!r})"

    def modes(self) -> list[str]:
        """Return the modes this engine can answer: dense, and bm25/hybrid when it has a BM25 index."""
        return [m for m in MODES if m == "dense" or self.bm25 is not None]

    def _hits(self, pairs, texts: dict[str, str] | None = None) -> list[Hit]:
        """Turn ``(doc_id, score)`` pairs into hits; ``texts`` gives the best passage of documents found by passage."""
        c, texts = self.corpus, texts or {}
        out = []
        for doc_id, score in pairs:
            i = c.row(doc_id)
            out.append(Hit(doc_id, float(score), c.titles[i], texts.get(doc_id, c.texts[i])))
        return out

    def search(
        self,
        query: str,
        k: int = 10,
        mode: Mode | None = None,
        prefix: str | None = None,
        fusion: Fusion | None = None,
        settings: SearchSettings | None = None,
    ) -> list[Hit]:
        """Return the top ``k`` hits for ``query`` (ids starting with ``prefix``); ``mode``/``fusion`` override ``settings``."""
        return self.search_many([query], k, mode, prefix=prefix, fusion=fusion, settings=settings)[0]

    def search_many(
        self,
        queries: list[str],
        k: int = 10,
        mode: Mode | None = None,
        prefix: str | None = None,
        fusion: Fusion | None = None,
        settings: SearchSettings | None = None,
    ) -> list[list[Hit]]:
        """Answer several queries at once (one encoder call for all of them); see :meth:`search_timed`."""
        s = (settings or self.defaults).with_(mode=mode, fusion=fusion)
        return self.search_timed(queries, k, s, prefix).hits

    def search_timed(
        self, queries: list[str], k: int = 10, settings: SearchSettings | None = None, prefix: str | None = None
    ) -> EngineResult:
        """Answer ``queries`` by ``settings`` (ids starting with ``prefix``): hits, per-stage timings, cache flags."""
        t0 = time.perf_counter()
        s = settings or self.defaults
        queries = check_queries(queries)
        check_positive_int("k", k)
        if s.mode != "dense" and self.bm25 is None:
            raise InputError(_NO_BM25[s.mode])
        if s.rerank_depth is not None and self.reranker is None:
            raise InputError(
                f"rerank_depth={s.rerank_depth} needs a re-ranker: give the engine one (SearchEngine(..., "
                "reranker=Reranker(DIR)), or --reranker DIR), or leave rerank_depth at None"
            )
        keys = [self.result_key(q, k, s, prefix) for q in queries] if self.results is not None else []
        if keys:
            found = [self.results.get(key) for key in keys]  # type: ignore[union-attr]
            if all(h is not None for h in found):
                total = (time.perf_counter() - t0) * 1000
                no_encoder = [s.mode != "bm25"] * len(queries)  # ``cached``: no encoder call (BM25 never has one)
                return EngineResult(found, StageTimings(0.0, total, total), no_encoder, result_cached=True)  # type: ignore[arg-type]
        cached, embed_ms, failed = [False] * len(queries), 0.0, []
        n = max(k, s.rerank_depth or 0)  # the re-ranker sees its whole depth, whatever k
        if s.mode == "bm25":
            hits = [self._hits(self.bm25.search(q, n, mask=self._mask(prefix))) for q in queries]  # type: ignore[union-attr]
        else:
            xq, cached, embed_ms = self.encode_queries(queries)
            hits = self._dense(xq, n, s, prefix, failed) if s.mode == "dense" else self._hybrid(queries, xq, n, s, prefix, failed)
        hits, rerank_ms = self._rerank(queries, hits, k, s.rerank_depth)
        if keys and not failed:  # a partial answer (a shard down) is never kept
            for key, row in zip(keys, hits):
                self.results.put(key, row)  # type: ignore[union-attr]
        total = (time.perf_counter() - t0) * 1000
        timings = StageTimings(embed_ms, max(total - embed_ms - rerank_ms, 0.0), total, rerank_ms)
        return EngineResult(hits, timings, cached, partial=bool(failed), failed_shards=tuple(sorted(set(failed))))

    def result_key(self, query: str, k: int, settings: SearchSettings, prefix: str | None) -> tuple:
        """Return the result cache's key for one query: the query and everything its answer depends on.

        The index's ``version`` (a number no other index state in the process has: every add, remove, update,
        train and load makes a new one) and its own ``nprobe``/``ef_search`` are part of it, so a changed index
        never answers from the cache.
        """
        index = self.index
        state = (getattr(index, "version", id(index)), getattr(index, "nprobe", None), getattr(index, "ef_search", None))
        others = (id(self.bm25), id(self.corpus), id(self.reranker))
        return (query, k, settings, prefix, self.embedder.cache_id, *state, *others)

    def _rerank(
        self, queries: list[str], hits: list[list[Hit]], k: int, depth: int | None
    ) -> tuple[list[list[Hit]], float]:
        """Re-order the first ``depth`` hits of each query with the cross-encoder; return the top ``k`` and ms spent."""
        if depth is None:
            return hits, 0.0
        t0 = time.perf_counter()
        rerank = self.reranker.rerank_head  # type: ignore[union-attr]
        out = [rerank(q, row, depth)[:k] for q, row in zip(queries, hits)]
        return out, (time.perf_counter() - t0) * 1000

    def encode_queries(self, queries: list[str]) -> tuple[np.ndarray, list[bool], float]:
        """Embed ``queries`` reusing ``self.cache``; return ``(n, dim)`` float32, cache flags, and ms spent."""
        t0 = time.perf_counter()
        texts = [normalize_query(q) for q in queries]
        xq = np.empty((len(texts), self.embedder.dim), dtype=np.float32)
        cached = [False] * len(texts)
        model, cache = self.embedder.cache_id, self.cache
        for i, text in enumerate(texts if cache is not None else []):
            vec = cache.lookup(model, text, self.embedder.dim)  # type: ignore[union-attr]
            if vec is not None:
                xq[i], cached[i] = vec, True
        todo = [i for i, hit in enumerate(cached) if not hit]
        if todo:
            xq[todo] = self.embedder.encode([texts[i] for i in todo])
            for i in todo if cache is not None else []:
                cache.store(model, texts[i], xq[i])
        return xq, cached, (time.perf_counter() - t0) * 1000

    def _mask(self, prefix: str | None) -> np.ndarray | None:
        """Return the BM25 rows whose id starts with ``prefix`` (None: every row)."""
        return None if prefix is None else np.array([d.startswith(prefix) for d in self.bm25.ids])  # type: ignore[union-attr]

    def _vector_search(
        self, xq: np.ndarray, k: int, s: SearchSettings, prefix: str | None, failed: list[int]
    ) -> list[tuple[list, dict]]:
        """Return per query the top ``k`` ``(doc_id, score)`` by vectors, each document once, and its best passages.

        A sharded index answers without shards that are down: their numbers are added to ``failed``.
        """
        def search(depth: int):
            """Return the index's top ``depth`` passages (or documents) for every query."""
            res = self.index.search(xq, depth, nprobe=s.nprobe, ef_search=s.ef_search, prefix=prefix)
            failed.extend(getattr(res, "failed_shards", []))
            return res

        res = search(k)
        if self.passages is None:
            return [(list(zip(ids, scores)), {}) for ids, scores in zip(res.ids, res.scores)]
        depth = k
        while True:  # fetch passages until k distinct documents (or the whole index) are in view
            docs = [self.passages.documents(self.corpus, ids, scores, k) for ids, scores in zip(res.ids, res.scores)]
            if depth >= len(self.index) or all(len(d) >= k for d in docs):
                return [([(d, sc) for d, sc, _ in found], {d: t for d, _, t in found}) for found in docs]
            depth = min(len(self.index), depth * 4)
            res = search(depth)

    def _dense(self, xq: np.ndarray, k: int, s: SearchSettings, prefix: str | None, failed: list[int]) -> list[list[Hit]]:
        return [self._hits(pairs, texts) for pairs, texts in self._vector_search(xq, k, s, prefix, failed)]

    def _hybrid(
        self, queries: list[str], xq: np.ndarray, k: int, s: SearchSettings, prefix: str | None, failed: list[int]
    ) -> list[list[Hit]]:
        """Fuse the top ``s.hybrid_depth`` BM25 and dense results of each query (searchkit.relevance.fusion)."""
        depth = max(int(k), int(s.hybrid_depth))
        mask = self._mask(prefix)
        out = []
        for q, (pairs, texts) in zip(queries, self._vector_search(xq, depth, s, prefix, failed)):
            lists = [self.bm25.search(q, depth, mask=mask), pairs]  # type: ignore[union-attr]
            out.append(self._hits(s.fuse(lists, int(k)), texts))
        return out

    def similarity(self, a: str, b: str) -> float:
        """Return the cosine similarity of two texts."""
        va, vb = self.embedder.encode([a, b])
        return float(np.dot(va, vb))


