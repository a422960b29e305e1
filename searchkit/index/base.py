"""What every index is: the :class:`Index` protocol the engine searches through, and the :class:`SearchResult` it returns.

``VectorIndex`` (faiss), the compressed-code indexes of :mod:`searchkit.index.codes` and the sharded index of
:mod:`searchkit.scale.shards` all meet :class:`Index`, so :class:`~searchkit.engine.SearchEngine` takes any of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from searchkit.errors import InputError
from searchkit.validation import check_id_list


@dataclass
class SearchResult:
    """Results for a batch of queries: ``ids[q]`` and ``scores[q]`` hold the hits of query ``q``, best first.

    A sharded index that could not reach every shard sets ``partial`` and names the ``failed_shards``.
    """

    ids: list[list[str]]
    scores: list[list[float]]
    partial: bool = False
    failed_shards: list[int] = field(default_factory=list)


@runtime_checkable
class Index(Protocol):
    """An index of unit vectors under document ids, as the engine, the app and the benchmarks use it.

    ``version`` changes with every change to the vectors (caches compare it); ``model_id`` and ``backend``
    name the encoder that made the vectors (None: unknown); ``factory`` says what kind of index it is.
    """

    dim: int
    factory: str
    metric: str
    model_id: str | None
    backend: str | None
    version: int

    def __len__(self) -> int: ...

    def search(
        self, xq: np.ndarray, k: int = 10, nprobe: int | None = None, ef_search: int | None = None,
        subset: Iterable[str] | None = None, prefix: str | None = None,
    ) -> SearchResult:  # fmt: skip
        """Return the ``k`` best documents per row of ``xq`` (shape ``(nq, dim)``), best first."""
        ...

    def add(self, ids: Sequence[str], xb: np.ndarray) -> None:
        """Add vectors ``xb`` (shape ``(n, dim)``) under new ``ids``."""
        ...

    def remove(self, ids: Iterable[str]) -> int:
        """Remove the documents ``ids``; return how many were there."""
        ...


# -- helpers for indexes that rank row numbers -------------------------------------------------------


def result_of(D: np.ndarray, I: np.ndarray, ids: Sequence[str | None]) -> SearchResult:
    """Return faiss-style scores ``D`` and row numbers ``I`` (-1 or a non-finite score: none) as ids ``ids[row]``."""
    out_ids, out_scores = [], []
    for drow, irow in zip(D, I):
        keep = (irow >= 0) & np.isfinite(drow)
        out_ids.append([ids[j] for j in irow[keep]])
        out_scores.append([float(s) for s in drow[keep]])
    return SearchResult(out_ids, out_scores)  # type: ignore[arg-type]


def rows_matching(ids: Sequence[str], subset: Iterable[str] | None, prefix: str | None) -> np.ndarray | None:
    """Return a mask of the rows whose id is in ``subset`` and starts with ``prefix`` (None: no filter)."""
    if subset is None and prefix is None:
        return None
    if prefix is not None and (not isinstance(prefix, str) or not prefix):
        raise InputError(f"prefix must be a non-empty string such as 'os.', got {prefix!r}")
    wanted = None if subset is None else set(check_id_list(subset))
    return np.array([(wanted is None or d in wanted) and d.startswith(prefix or "") for d in ids], dtype=bool)


def keep_rows(D: np.ndarray, I: np.ndarray, allowed: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep, in order, the first ``fetch`` results of each row whose row number ``allowed`` admits (-1 after them)."""
    ok = (I >= 0) & allowed[np.maximum(I, 0)]
    order = np.argsort(~ok, axis=1, kind="stable")[:, :fetch]
    D, I = np.take_along_axis(D, order, 1), np.take_along_axis(I, order, 1)
    I[~np.take_along_axis(ok, order, 1)] = -1
    return D, I


def no_results(n_queries: int) -> SearchResult:
    """Return an empty result for each of ``n_queries`` queries."""
    return SearchResult([[] for _ in range(n_queries)], [[] for _ in range(n_queries)])


def exact_top_k(xq: np.ndarray, cand: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Re-score candidate rows ``cand`` (``(nq, c)``, -1 = none) of ``vectors`` by inner product; keep ``k``."""
    nq, c = cand.shape
    scores = np.full((nq, c), -np.inf, dtype=np.float32)
    for q in range(nq):
        ok = cand[q] >= 0
        rows = cand[q][ok]
        order = np.argsort(rows)  # read a memory-mapped file front to back
        got = np.empty((len(rows), vectors.shape[1]), dtype=np.float32)
        got[order] = vectors[rows[order]]
        scores[q, ok] = got @ xq[q]
    k = min(k, c)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, top, 1), np.take_along_axis(cand, top, 1)


def top_of(S: np.ndarray, I: np.ndarray, k: int, ids: Sequence[str]) -> SearchResult:
    """Return the ``k`` best of scores ``S`` for rows ``I`` (-1: none) as a result."""
    S[I < 0] = -np.inf
    top = np.argsort(-S, axis=1, kind="stable")[:, :k]
    return result_of(np.take_along_axis(S, top, 1), np.take_along_axis(I, top, 1), ids)
