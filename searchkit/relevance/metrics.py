"""Ranking metrics (nDCG@k, Recall@k, MRR@k, MAP, Success@k) per query, with paired bootstrap confidence intervals.

A *run* maps each query id to its retrieved documents, best first: a ranked list of ids or of
``(doc_id, score)`` pairs, or a ``{doc_id: score}`` dict (sorted by score, highest first, ties by id).
*Qrels* map each query id to graded judgments ``{doc_id: grade}``; a grade above 0 means relevant.
Gains are linear in the grade (as in ``trec_eval`` and BEIR). Metrics are averaged over the queries
with at least one relevant document; such a query missing from the run scores 0.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from searchkit.errors import InputError
from searchkit.validation import check_positive_int

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, "Sequence[str] | Mapping[str, float]"]

METRICS: tuple[str, ...] = ("ndcg", "recall", "mrr", "map", "precision", "success")
_NAME = re.compile(r"^([a-z][a-z0-9_]*)(?:@(\d+))?$")  # a name of _FUNCS, optionally with a cutoff


def ranked(docs: Sequence[str] | Sequence[tuple[str, float]] | Mapping[str, float]) -> list[str]:
    """Return one query's results as ranked ids: a list of ids or of ``(id, score)`` pairs keeps its order;
    a ``{id: score}`` dict is sorted by score, highest first, ties by id."""
    if isinstance(docs, Mapping):
        return [d for d, _ in sorted(docs.items(), key=lambda x: (-float(x[1]), str(x[0])))]
    if isinstance(docs, str):
        raise InputError(f"a query's results must be a list of ids or a dict of scores, got the string {docs!r}")
    return [str(d[0]) if isinstance(d, (tuple, list)) else str(d) for d in docs]


def ndcg(docs: Sequence[str], judged: Mapping[str, int], k: int | None = 10) -> float:
    """Return nDCG@k of one ranked list: DCG = sum(grade / log2(rank + 1)), divided by the ideal DCG."""
    k = check_positive_int("k", k, none_ok=True, hint="None: all results")
    top = list(docs)[:k] if k else list(docs)
    dcg = sum(max(judged.get(d, 0), 0) / math.log2(r + 2) for r, d in enumerate(top))
    ideal = sorted((g for g in judged.values() if g > 0), reverse=True)[: k or None]
    idcg = sum(g / math.log2(r + 2) for r, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall(docs: Sequence[str], judged: Mapping[str, int], k: int | None = 100) -> float:
    """Return Recall@k of one ranked list: the share of relevant documents found in the top k."""
    k = check_positive_int("k", k, none_ok=True, hint="None: all results")
    relevant = {d for d, g in judged.items() if g > 0}
    if not relevant:
        return 0.0
    top = list(docs)[:k] if k else list(docs)
    return len(relevant.intersection(top)) / len(relevant)


def precision(docs: Sequence[str], judged: Mapping[str, int], k: int | None = 10) -> float:
    """Return Precision@k of one ranked list: relevant documents in the top k, divided by k."""
    k = check_positive_int("k", k, none_ok=True, hint="None: all results")
    top = list(docs)[:k] if k else list(docs)
    if not top:
        return 0.0
    return sum(judged.get(d, 0) > 0 for d in top) / (k or len(top))


def mrr(docs: Sequence[str], judged: Mapping[str, int], k: int | None = 10) -> float:
    """Return the reciprocal rank of the first relevant document in the top k (0 when none is there)."""
    k = check_positive_int("k", k, none_ok=True, hint="None: all results")
    for r, d in enumerate(list(docs)[:k] if k else docs):
        if judged.get(d, 0) > 0:
            return 1.0 / (r + 1)
    return 0.0


def success(docs: Sequence[str], judged: Mapping[str, int], k: int | None = 10) -> float:
    """Return Success@k of one ranked list: 1.0 if a relevant document is in the top k, else 0.0."""
    return 1.0 if mrr(docs, judged, k) > 0 else 0.0


def average_precision(docs: Sequence[str], judged: Mapping[str, int], k: int | None = None) -> float:
    """Return average precision: mean of precision@rank over the relevant documents (unfound ones count 0)."""
    k = check_positive_int("k", k, none_ok=True, hint="None: all results")
    n_rel = sum(g > 0 for g in judged.values())
    if not n_rel:
        return 0.0
    hits, total = 0, 0.0
    for r, d in enumerate(list(docs)[:k] if k else docs):
        if judged.get(d, 0) > 0:
            hits += 1
            total += hits / (r + 1)
    return total / n_rel


_FUNCS = {
    "ndcg": ndcg, "recall": recall, "mrr": mrr, "map": average_precision, "precision": precision, "success": success,
}  # fmt: skip


def register_metric(name: str, fn: Callable[..., float]) -> None:
    """Make ``fn(docs, judged, k=...) -> float`` (one ranked list, one query's judgments) the metric ``name``.

    :func:`parse_metric` then accepts ``name`` and ``name@k``; :func:`evaluate`, :func:`per_query` and
    :func:`searchkit.relevance.evaluate.evaluate_systems` (confidence intervals, paired tests) compute it.
    """
    if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        raise InputError(f"metric name {name!r} must be lower-case letters, digits or '_', e.g. 'judged'")
    if not callable(fn):
        raise InputError(f"metric {name!r} needs a function fn(docs, judged, k) -> float, got {type(fn).__name__}")
    _FUNCS[name] = fn


def parse_metric(name: str) -> tuple[str, int | None]:
    """Split a metric name like ``"ndcg@10"`` or ``"map"`` into ``("ndcg", 10)`` / ``("map", None)``."""
    m = _NAME.match(str(name).strip().lower())
    if not m or m.group(1) not in _FUNCS or (m.group(2) is not None and int(m.group(2)) < 1):
        raise InputError(
            f"unknown metric {name!r}: use one of {', '.join(_FUNCS)}, optionally with a cutoff like 'ndcg@10'"
        )
    return m.group(1), int(m.group(2)) if m.group(2) else None


def _judged(qrels: Qrels) -> list[str]:
    if not isinstance(qrels, Mapping):
        raise InputError(f"qrels must be a dict {{query_id: {{doc_id: grade}}}}, got {type(qrels).__name__}")
    qids = [q for q, docs in qrels.items() if any(g > 0 for g in docs.values())]
    if not qids:
        raise InputError("qrels hold no relevant document (grade > 0) for any query: nothing to evaluate")
    return sorted(qids)


def per_query(run: Run, qrels: Qrels, metric: str, queries: Sequence[str] | None = None) -> np.ndarray:
    """Return one value of ``metric`` (e.g. ``"ndcg@10"``) per judged query, in sorted query-id order."""
    name, k = parse_metric(metric)
    if not isinstance(run, Mapping):
        raise InputError(f"run must be a dict {{query_id: ranked ids or {{doc_id: score}}}}, got {type(run).__name__}")
    qids = list(queries) if queries is not None else _judged(qrels)
    fn = _FUNCS[name]  # no cutoff in the name: the whole ranked list counts
    return np.array([fn(ranked(run.get(q, [])), qrels.get(q, {}), k=k) for q in qids], dtype=np.float64)


def evaluate(
    run: Run, qrels: Qrels, metrics: Sequence[str] = ("ndcg@10", "recall@100", "mrr@10", "map")
) -> dict[str, float]:
    """Return the mean of each metric over the judged queries, e.g. ``{"ndcg@10": 0.64, ...}``."""
    if isinstance(metrics, str):
        metrics = [metrics]
    return {m: float(per_query(run, qrels, m).mean()) for m in metrics}


# ---------------------------------------------------------------------------------------------
# Confidence intervals and significance
# ---------------------------------------------------------------------------------------------


class _Interval:
    """A figure with its confidence interval [low, high], written ``figure [low, high]`` (and ``p=`` if it has one)."""

    low: float
    high: float
    _figure: str  # the field the interval is around
    _format: str = ".3f"

    def __str__(self) -> str:
        f = self._format
        text = f"{getattr(self, self._figure):{f}} [{self.low:{f}}, {self.high:{f}}]"
        p = getattr(self, "p_value", None)
        return text if p is None else f"{text}, p={p:.3g}"


@dataclass
class Estimate(_Interval):
    """A mean over queries with its bootstrap confidence interval."""

    mean: float
    low: float
    high: float
    n: int
    _figure = "mean"


@dataclass
class Comparison(_Interval):
    """System A vs B on the same queries: mean difference (A - B), its CI and a two-sided p-value."""

    mean_a: float
    mean_b: float
    diff: float
    low: float
    high: float
    p_value: float
    n: int
    _figure, _format = "diff", "+.3f"


def _scores(x: Sequence[float] | np.ndarray, name: str = "scores") -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1 or a.size == 0:
        raise InputError(f"{name} must be a non-empty 1-d list of per-query values, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{name} contain NaN or inf: compute per-query metrics first")
    return a


def _check_resamples(n_resamples: int, confidence: float) -> None:
    check_positive_int("n_resamples", n_resamples, minimum=100)
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be between 0 and 1 (e.g. 0.95), got {confidence!r}")


def _resample_means(x: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Return ``n_resamples`` means of ``x`` over query sets drawn with replacement (chunked to bound memory)."""
    rng = np.random.default_rng(seed)
    out = np.empty(n_resamples)
    step = max(1, 2_000_000 // x.size)
    for s in range(0, n_resamples, step):
        m = min(step, n_resamples - s)
        out[s : s + m] = x[rng.integers(0, x.size, size=(m, x.size))].mean(axis=1)
    return out


def bootstrap_ci(
    scores: Sequence[float] | np.ndarray, confidence: float = 0.95, n_resamples: int = 10_000, seed: int = 0
) -> Estimate:
    """Return the mean of per-query ``scores`` with a percentile bootstrap CI (queries resampled)."""
    x = _scores(scores)
    _check_resamples(n_resamples, confidence)
    means = _resample_means(x, n_resamples, seed)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return Estimate(float(x.mean()), float(lo), float(hi), int(x.size))


def paired_bootstrap(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Compare per-query scores of systems A and B on the same queries by a paired bootstrap.

    The CI is the percentile interval of the resampled mean difference; the two-sided p-value is the
    share of resampled differences, shifted to mean 0 (the null hypothesis), at least as far from 0
    as the observed one.
    """
    xa, xb = _scores(a, "scores of A"), _scores(b, "scores of B")
    if xa.shape != xb.shape:
        raise InputError(
            f"A has {xa.size} per-query scores but B has {xb.size}: evaluate both systems on the same queries"
        )
    _check_resamples(n_resamples, confidence)
    d = xa - xb
    observed = float(d.mean())
    means = _resample_means(d, n_resamples, seed)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    extreme = np.abs(means - observed) >= abs(observed) - 1e-12
    p = (int(extreme.sum()) + 1) / (n_resamples + 1)
    if observed == 0 and not d.any():
        p = 1.0
    return Comparison(float(xa.mean()), float(xb.mean()), observed, float(lo), float(hi), float(min(p, 1.0)), d.size)


# ---------------------------------------------------------------------------------------------
# Online experiments: proportions (A/B split) and the sign test (interleaving)
# Each function works on plain counts or, element by element, on numpy arrays of counts.
# ---------------------------------------------------------------------------------------------

_Z95 = 1.959963984540054  # the standard normal's 97.5% quantile


def _counts(name: str, x) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype.kind not in "iu" and not (a.dtype.kind == "f" and np.all(a == np.round(a))):
        raise InputError(f"{name} must be whole counts, got {x!r}")
    if np.any(a < 0):
        raise InputError(f"{name} must be counts of at least 0, got {x!r}")
    return a.astype(np.float64)


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise InputError(f"confidence must be between 0 and 1 (e.g. 0.95), got {confidence!r}")
    if confidence == 0.95:
        return _Z95
    from scipy.special import ndtri

    return float(ndtri(0.5 + confidence / 2))


def _out(a: np.ndarray):
    return float(a) if np.ndim(a) == 0 else a


def proportion_ci(successes, n, confidence: float = 0.95) -> tuple:
    """Return the Wilson score interval ``(low, high)`` of ``successes / n`` (e.g. a click-through rate)."""
    x, n_ = _counts("successes", successes), _counts("n", n)
    if np.any(x > n_):
        raise InputError(f"successes ({successes!r}) cannot exceed n ({n!r})")
    z = _z(confidence)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = x / n_
        centre = (p + z * z / (2 * n_)) / (1 + z * z / n_)
        half = z / (1 + z * z / n_) * np.sqrt(p * (1 - p) / n_ + z * z / (4 * n_ * n_))
    low, high = np.where(n_ > 0, centre - half, 0.0), np.where(n_ > 0, centre + half, 1.0)
    return _out(np.clip(low, 0, 1)), _out(np.clip(high, 0, 1))


def two_proportion_test(x_a, n_a, x_b, n_b, confidence: float = 0.95) -> Comparison:
    """Compare rates ``x_a / n_a`` and ``x_b / n_b`` (e.g. click-through rates): difference A - B, its CI, and a
    two-sided z-test p-value.

    The p-value uses the pooled rate (the null hypothesis: both rates are equal); the CI uses each arm's
    own rate (unpooled standard error). With no successes or no failures at all the p-value is 1.
    Counts may be numpy arrays (one test per element).
    """
    from scipy.special import ndtr

    xa, na, xb, nb = (_counts(k, v) for k, v in (("x_a", x_a), ("n_a", n_a), ("x_b", x_b), ("n_b", n_b)))
    if np.any(na == 0) or np.any(nb == 0):
        raise InputError(f"each arm needs at least one trial, got n_a={n_a!r}, n_b={n_b!r}")
    if np.any(xa > na) or np.any(xb > nb):
        raise InputError(f"successes cannot exceed trials: got {x_a!r}/{n_a!r} and {x_b!r}/{n_b!r}")
    z = _z(confidence)
    pa, pb = xa / na, xb / nb
    diff = pa - pb
    half = z * np.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
    pooled = (xa + xb) / (na + nb)
    se0 = np.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(se0 > 0, 2 * ndtr(-np.abs(diff) / np.where(se0 > 0, se0, 1)), 1.0)
    return Comparison(_out(pa), _out(pb), _out(diff), _out(diff - half), _out(diff + half), _out(p), _out(na + nb))


def sign_test(wins, losses):
    """Return the exact two-sided sign-test p-value of ``wins`` vs ``losses`` (ties left out): binomial, p = 1/2."""
    from scipy.special import betainc

    w, l_ = _counts("wins", wins), _counts("losses", losses)
    n, k = w + l_, np.minimum(w, l_)
    with np.errstate(invalid="ignore"):
        # P(X <= k) for X ~ Binomial(n, 1/2) is the regularized incomplete beta I_{1/2}(n - k, k + 1)
        tail = np.where(k < n / 2, betainc(np.maximum(n - k, 1), k + 1, 0.5), 0.5)
    return _out(np.where(n > 0, np.minimum(1.0, 2 * tail), 1.0))


def preference_test(wins_a: int, wins_b: int, ties: int = 0, confidence: float = 0.95) -> Comparison:
    """Summarize interleaved impressions won by A, won by B, or tied: each scores +1 (A won), -1 (B won) or 0.

    Return the share won by A and by B, the preference for A (their difference, the mean score) with a
    normal CI, and the exact sign test of A's wins against B's (ties left out).
    """
    a, b, t = (int(_counts(k, v)) for k, v in (("wins_a", wins_a), ("wins_b", wins_b), ("ties", ties)))
    n = a + b + t
    if n == 0:
        return Comparison(0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0)
    pref = (a - b) / n
    var = (a + b) / n - pref * pref  # variance of the +1/0/-1 score
    half = _z(confidence) * math.sqrt(max(var, 0.0) / n)
    return Comparison(a / n, b / n, pref, pref - half, pref + half, float(sign_test(a, b)), n)
