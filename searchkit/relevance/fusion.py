"""Combine ranked lists from several retrievers (e.g. BM25 and dense) into one.

Each input list holds ``(doc_id, score)`` pairs, best first. Reciprocal rank fusion uses only the ranks;
normalized score fusion rescales each list's scores (min-max to [0, 1], or z-scores) and adds them with
weights. A document missing from a list gets that list's lowest normalized score (0 for min-max).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, get_args

import numpy as np

from searchkit.errors import InputError

Ranking = Sequence[tuple[str, float]]
Fusion = Literal["rrf", "minmax", "zscore"]
FUSIONS: tuple[str, ...] = get_args(Fusion)


def check_fusion(method: object) -> str:
    """Return ``method`` if it names a fusion ("rrf", "minmax", "zscore"); raise an error naming the choices otherwise.

    The one check of fusion names: settings, tuning, experiment arms and :func:`fuse` all call it.
    """
    if not isinstance(method, str) or method not in FUSIONS:
        raise InputError(f"unknown fusion {method!r}: choose one of {', '.join(FUSIONS)}")
    return method


def _check_lists(rankings: Sequence[Ranking], weights: Sequence[float] | None) -> list[float]:
    if isinstance(rankings, (str, bytes)) or not isinstance(rankings, Sequence) or len(rankings) == 0:
        raise InputError(f"give a non-empty list of rankings (one (doc_id, score) list per system), got {rankings!r}")
    if weights is None:
        return [1.0] * len(rankings)
    w = [float(x) for x in weights]
    if len(w) != len(rankings):
        raise InputError(f"got {len(w)} weights for {len(rankings)} rankings: give one weight per ranking")
    if any(not np.isfinite(x) or x < 0 for x in w) or sum(w) == 0:
        raise InputError(f"weights must be finite, non-negative and not all 0, got {list(weights)}")
    return w


def _sorted(scores: dict[str, float], k: int | None) -> list[tuple[str, float]]:
    out = sorted(scores.items(), key=lambda x: (-x[1], x[0]))
    return out[:k] if k else out


def _pairs(ranking: Ranking, i: int) -> list[tuple[str, float]]:
    out = []
    for item in ranking:
        if isinstance(item, str):
            raise InputError(f"ranking {i} holds the bare id {item!r}: give (doc_id, score) pairs")
        doc_id, score = item
        out.append((str(doc_id), float(score)))
    return out


def rrf(
    rankings: Sequence[Ranking], k: int = 60, weights: Sequence[float] | None = None, limit: int | None = None
) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: score(d) = sum_i w_i / (k + rank_i(d)), ranks from 1; return the top ``limit``."""
    if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)) or not k >= 0:
        raise InputError(f"RRF k must be a number >= 0 (60 is the usual choice), got {k!r}")
    w = _check_lists(rankings, weights)
    fused: dict[str, float] = {}
    for i, (ranking, wi) in enumerate(zip(rankings, w)):
        for rank, (doc_id, _) in enumerate(_pairs(ranking, i), start=1):
            fused[doc_id] = fused.get(doc_id, 0.0) + wi / (k + rank)
    return _sorted(fused, limit)


def normalize(scores: Sequence[float] | np.ndarray, method: str = "minmax") -> np.ndarray:
    """Rescale one list's scores: ``"minmax"`` to [0, 1], ``"zscore"`` to mean 0 and std 1 (constant -> 0)."""
    x = np.asarray(scores, dtype=np.float64)
    if x.size == 0:
        return x
    if method == "minmax":
        span = x.max() - x.min()
        return (x - x.min()) / span if span > 0 else np.ones_like(x)
    if method == "zscore":
        sd = x.std()
        return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)
    raise InputError(f"unknown normalization {method!r}: use 'minmax' or 'zscore'")


def score_fusion(
    rankings: Sequence[Ranking],
    method: str = "minmax",
    weights: Sequence[float] | None = None,
    limit: int | None = None,
) -> list[tuple[str, float]]:
    """Normalized score fusion: score(d) = sum_i w_i * norm_i(d); return the top ``limit`` pairs."""
    if method not in ("minmax", "zscore"):
        raise InputError(f"unknown normalization {method!r}: use 'minmax' or 'zscore'")
    w = _check_lists(rankings, weights)
    lists = [_pairs(r, i) for i, r in enumerate(rankings)]
    normed = []
    for pairs in lists:
        z = normalize([s for _, s in pairs], method)
        normed.append(({d: float(v) for (d, _), v in zip(pairs, z)}, float(z.min()) if z.size else 0.0))
    if method == "minmax":  # a document a system did not return scores 0, the bottom of that scale
        normed = [(m, 0.0) for m, _ in normed]
    docs = {d for pairs in lists for d, _ in pairs}
    fused = {d: sum(wi * m.get(d, floor) for wi, (m, floor) in zip(w, normed)) for d in docs}
    return _sorted(fused, limit)


def fuse(
    rankings: Sequence[Ranking],
    method: Fusion = "rrf",
    weights: Sequence[float] | None = None,
    limit: int | None = None,
    rrf_k: int = 60,
) -> list[tuple[str, float]]:
    """Fuse ``rankings`` with ``method`` ("rrf", "minmax" or "zscore")."""
    if check_fusion(method) == "rrf":
        return rrf(rankings, k=rrf_k, weights=weights, limit=limit)
    return score_fusion(rankings, method, weights=weights, limit=limit)
