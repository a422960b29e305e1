"""Evaluate search systems on judged queries: metric tables with 95% CIs and paired tests.

A *system* is an engine plus a mode (``"bm25"``, ``"dense"``, ``"hybrid"``; ``"hybrid:minmax"`` picks the
fusion). :func:`evaluate_systems` runs every judged query of a dataset (BEIR layout or the built-in set)
through each system and returns a :class:`Report`: mean nDCG@10, Recall@100, MRR@10, MAP with bootstrap
confidence intervals, per-query values for paired tests, and latency per query. :func:`interleave` is an
offline rehearsal of an online A/B test: team-draft interleaving with clicks simulated from the judgments.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from searchkit.corpus.datasets import Dataset
from searchkit.errors import InputError
from searchkit.measure.report import format_table
from searchkit.relevance.metrics import (
    Comparison,
    Estimate,
    bootstrap_ci,
    paired_bootstrap,
    parse_metric,
    per_query,
)
from searchkit.validation import check_positive_int

DEFAULT_METRICS: tuple[str, ...] = ("ndcg@10", "recall@100", "mrr@10", "map")
RunT = dict[str, list[tuple[str, float]]]


@dataclass
class System:
    """A named way to answer queries: ``engine.search_many(queries, k, mode=..., fusion=...)``."""

    name: str
    engine: object
    mode: str = "dense"
    fusion: str | None = None

    @classmethod
    def of(cls, engine, spec: str, name: str | None = None) -> System:
        """Make a system from ``spec`` = ``"bm25"``, ``"dense"``, ``"hybrid"`` or ``"hybrid:<rrf|minmax|zscore>"``."""
        mode, _, fusion = spec.partition(":")
        return cls(name or spec, engine, mode, fusion or None)

    def search(self, queries: list[str], k: int) -> list[list[tuple[str, float]]]:
        """Return ``(doc_id, score)`` lists for ``queries``, best first."""
        kw = {"fusion": self.fusion} if self.fusion else {}
        hits = self.engine.search_many(queries, k, mode=self.mode, **kw)  # type: ignore[attr-defined]
        return [[(h.id, h.score) for h in row] for row in hits]


def run_queries(
    search: Callable[[list[str], int], list[list[tuple[str, float]]]],
    queries: Mapping[str, str],
    k: int = 100,
    batch_size: int = 1,
    progress: bool | None = None,
    desc: str = "queries",
) -> tuple[RunT, np.ndarray]:
    """Answer every query (``batch_size`` at a time, after one warm-up call); return the run and ms per query."""
    check_positive_int("batch_size", batch_size)
    from tqdm.auto import tqdm

    qids = list(queries)
    if not qids:
        raise InputError("no queries to run: give at least one {query_id: text}")
    search([queries[qids[0]]], k)  # warm-up: first-call costs (threads, caches) are not latency
    run: RunT = {}
    ms = np.empty(len(qids))
    show = len(qids) * (1 if batch_size == 1 else 0.2) >= 200 if progress is None else progress
    for s in tqdm(range(0, len(qids), batch_size), desc=desc, disable=not show, leave=False):
        part = qids[s : s + batch_size]
        t0 = time.perf_counter()
        results = search([queries[q] for q in part], k)
        ms[s : s + len(part)] = (time.perf_counter() - t0) * 1000 / len(part)
        run.update(zip(part, results))
    return run, ms


@dataclass
class SystemResult:
    """One system's run over the queries, its per-query metric values and latencies."""

    name: str
    run: RunT
    values: dict[str, np.ndarray]  # metric -> one value per query (Report.queries order)
    ms: np.ndarray  # milliseconds per query
    estimates: dict[str, Estimate] = field(default_factory=dict)

    @property
    def ms_per_query(self) -> float:
        """Return the mean latency in milliseconds per query."""
        return float(self.ms.mean())


@dataclass
class Report:
    """Metrics of several systems on the same judged queries."""

    dataset: str
    queries: list[str]
    metrics: list[str]
    results: dict[str, SystemResult]
    confidence: float = 0.95

    def __getitem__(self, name: str) -> SystemResult:
        try:
            return self.results[name]
        except KeyError:
            choices = ", ".join(self.results)
            raise InputError(f"no system named {name!r} in this report: choose one of {choices}") from None

    def rows(self) -> list[dict]:
        """Return one dict per system: each metric with ``_low``/``_high`` CI bounds, and ms_per_query."""
        out = []
        for r in self.results.values():
            row: dict = {"system": r.name}
            for m in self.metrics:
                e = r.estimates[m]
                row[m], row[f"{m} low"], row[f"{m} high"] = e.mean, e.low, e.high
            row["ms_per_query"] = r.ms_per_query
            out.append(row)
        return out

    def json_rows(self) -> list[dict]:
        """Return JSON rows: system, ndcg_at_10, ndcg_ci_low, ndcg_ci_high, recall_at_100, mrr_at_10, ms_per_query."""
        need = ("ndcg@10", "recall@100", "mrr@10")
        if missing := [m for m in need if m not in self.metrics]:
            raise InputError(f"the report lacks {', '.join(missing)}: evaluate with metrics including {need}")
        out = []
        for r in self.results.values():
            e = r.estimates
            out.append({
                "system": r.name,
                "ndcg_at_10": round(e["ndcg@10"].mean, 4),
                "ndcg_ci_low": round(e["ndcg@10"].low, 4),
                "ndcg_ci_high": round(e["ndcg@10"].high, 4),
                "recall_at_100": round(e["recall@100"].mean, 4),
                "mrr_at_10": round(e["mrr@10"].mean, 4),
                "ms_per_query": round(r.ms_per_query, 3),
            })  # fmt: skip
        return out

    def table(self, latency: bool = True) -> str:
        """Return the metrics as a text table: ``mean [low, high]`` per metric, and ms per query."""
        rows = []
        for r in self.results.values():
            row = {"system": r.name, **{m: str(r.estimates[m]) for m in self.metrics}}
            if latency:
                row["ms/query"] = r.ms_per_query
            rows.append(row)
        return format_table(rows, digits=1)

    def compare(self, a: str, b: str, metric: str = "ndcg@10", seed: int = 0) -> Comparison:
        """Return the paired bootstrap comparison of systems ``a`` and ``b`` on ``metric``."""
        if metric not in self.metrics:
            raise InputError(f"metric {metric!r} was not computed: choose one of {', '.join(self.metrics)}")
        return paired_bootstrap(self[a].values[metric], self[b].values[metric], self.confidence, seed=seed)

    def per_query(self, metric: str = "ndcg@10") -> dict[str, dict[str, float]]:
        """Return ``{query_id: {system: value}}`` for ``metric``."""
        if metric not in self.metrics:
            raise InputError(f"metric {metric!r} was not computed: choose one of {', '.join(self.metrics)}")
        return {q: {n: float(r.values[metric][i]) for n, r in self.results.items()} for i, q in enumerate(self.queries)}

    def wins(self, a: str, b: str, metric: str = "ndcg@10", margin: float = 0.0) -> dict[str, int]:
        """Count queries where ``a`` beats ``b`` by more than ``margin``, where ``b`` beats ``a``, and ties."""
        d = self[a].values[metric] - self[b].values[metric]
        return {a: int((d > margin).sum()), b: int((d < -margin).sum()), "tie": int((np.abs(d) <= margin).sum())}


def evaluate_systems(
    systems: Sequence[System] | Mapping[str, Callable[[list[str], int], list[list[tuple[str, float]]]]],
    dataset: Dataset,
    metrics: Sequence[str] = DEFAULT_METRICS,
    k: int = 100,
    queries: Sequence[str] | None = None,
    batch_size: int = 1,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    progress: bool | None = None,
) -> Report:
    """Run the judged queries of ``dataset`` through each system and return a :class:`Report` with CIs.

    ``systems`` are :class:`System` objects or ``{name: search(queries, k) -> [[(doc_id, score)]]}``.
    ``queries`` restricts the evaluation to those query ids (e.g. a fixed subset); ``k`` is the depth
    of each run (at least the largest metric cutoff).
    """
    items = list(systems.items()) if isinstance(systems, Mapping) else [(s.name, s.search) for s in systems]
    if not items:
        raise InputError("no systems to evaluate: give at least one System or {name: search function}")
    names = [n for n, _ in items]
    if len(set(names)) != len(names):
        raise InputError(f"system names must be unique, got {names}")
    cutoffs = [c for m in metrics if (c := parse_metric(m)[1])]
    if isinstance(k, bool) or not isinstance(k, int) or k < max(cutoffs, default=1):
        deepest = max(cutoffs, default=1)
        raise InputError(f"k={k!r} is below the deepest metric cutoff {deepest}: retrieve at least that many")
    judged = dataset.judged_queries()
    if queries is not None:
        unknown = [q for q in queries if q not in judged]
        if unknown:
            raise InputError(f"query {unknown[0]!r} is not a judged query of {dataset.name!r}: pick ids from its qrels")
        judged = {q: judged[q] for q in queries}
    if not judged:
        raise InputError(f"dataset {dataset.name!r} has no judged queries: it needs qrels with grades > 0")
    qids = sorted(judged)
    judged = {q: judged[q] for q in qids}
    results = {}
    for name, search in items:
        run, ms = run_queries(search, judged, k, batch_size, progress, desc=name)
        values = {m: per_query(run, dataset.qrels, m, qids) for m in metrics}
        est = {m: bootstrap_ci(v, confidence, n_resamples) for m, v in values.items()}
        results[name] = SystemResult(name, run, values, ms, est)
    return Report(dataset.name, qids, list(metrics), results, confidence)


def engine_with_index(engine, factory: str):
    """Return a copy of ``engine`` (same corpus and embedder, no BM25) searching a new faiss ``factory`` index."""
    from searchkit.engine import SearchEngine
    from searchkit.index.vector import VectorIndex

    xb = engine.embedder.encode_cached(engine.corpus.embedding_texts(), progress=False)
    index = VectorIndex.build(engine.corpus.ids, xb, factory, model_id=engine.embedder.model_id, quiet=True)
    return SearchEngine(engine.corpus, engine.embedder, index, None)


def evaluate_engine(
    engine, dataset: Dataset, modes: Sequence[str] = ("bm25", "dense", "hybrid:rrf", "hybrid:minmax"), **kw
) -> Report:
    """Evaluate several modes of one engine (``"hybrid:zscore"`` picks the fusion); see :func:`evaluate_systems`."""
    return evaluate_systems([System.of(engine, m) for m in modes], dataset, **kw)


def truncate_dims(x: np.ndarray, dims: int) -> np.ndarray:
    """Return the first ``dims`` columns of the ``(n, d)`` vectors ``x``, each row scaled back to unit length."""
    check_positive_int("dims", dims, maximum=x.shape[1], hint=f"at most the vectors' {x.shape[1]} dimensions")
    y = np.ascontiguousarray(x[:, :dims], dtype=np.float32)
    return y / np.maximum(np.linalg.norm(y, axis=1, keepdims=True), 1e-12)


def evaluate_dims(engine, dataset: Dataset, dims: Sequence[int] = (384, 256, 128, 64, 32),
                  metrics: Sequence[str] = ("ndcg@10", "recall@100"), name: str = "model") -> list[dict]:  # fmt: skip
    """Score exact dense search of ``engine``'s vectors cut to each of ``dims`` (Matryoshka truncation) on
    ``dataset``'s judged queries; return one row per size: ``{"model", "dims", "bytes", metric: mean, ...}``.

    One vector per document (``corpus.embedding_texts()``), as SciFact's abstracts need; float32 bytes per vector.
    """
    from searchkit.relevance.metrics import evaluate

    judged = dataset.judged_queries()
    qids = sorted(judged)
    xb = engine.embedder.encode_cached(dataset.corpus.embedding_texts(), progress=False)
    xq = engine.embedder.encode([judged[q] for q in qids], progress=False)
    depth = min(len(xb), max(parse_metric(m)[1] or 100 for m in metrics))
    rows = []
    for d in dims:
        scores = truncate_dims(xq, d) @ truncate_dims(xb, d).T
        top = np.argsort(-scores, axis=1, kind="stable")[:, :depth]
        run = {q: [(dataset.corpus.ids[j], float(scores[i, j])) for j in top[i]] for i, q in enumerate(qids)}
        qrels = {q: dataset.qrels[q] for q in qids}
        rows.append({"model": name, "dims": d, "bytes": 4 * d, **evaluate(run, qrels, metrics)})
    return rows


# ---------------------------------------------------------------------------------------------
# Team-draft interleaving with simulated clicks
# ---------------------------------------------------------------------------------------------


