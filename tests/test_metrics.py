"""Our metrics agree with ranx on the same runs; bootstrap intervals and the paired test behave."""

from __future__ import annotations

import math

import numpy as np
import pytest

from searchkit.errors import InputError
from searchkit.relevance import metrics as M


def random_runs(seed: int, n_queries: int = 60, n_docs: int = 300, depth: int = 150):
    """Return (qrels, run) with graded judgments 0-3 and tie-free random scores."""
    rng = np.random.default_rng(seed)
    docs = [f"d{i}" for i in range(n_docs)]
    qrels, run = {}, {}
    for q in range(n_queries):
        qid = f"q{q}"
        judged = rng.choice(n_docs, size=int(rng.integers(1, 12)), replace=False)
        grades = rng.integers(0, 4, size=judged.size)
        grades[0] = max(grades[0], 1)  # every query has a relevant document
        qrels[qid] = {docs[j]: int(g) for j, g in zip(judged, grades)}
        # a run that finds relevant documents more often than chance, with unique scores
        pool = list(rng.choice(n_docs, size=depth, replace=False))
        scores = rng.permutation(depth).astype(float) + rng.random(depth) * 0.5
        for j, g in zip(judged, grades):
            if g > 0 and rng.random() < 0.6 and j not in pool:
                pool[int(rng.integers(0, depth))] = j
        run[qid] = {docs[j]: float(s) + (50.0 if docs[j] in qrels[qid] and rng.random() < 0.3 else 0.0)
                    for j, s in zip(pool, scores)}
    return qrels, run


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_ranx(seed):
    ranx = pytest.importorskip("ranx")
    qrels, run = random_runs(seed)
    names = ["ndcg@10", "recall@100", "mrr@10", "map", "ndcg@3", "recall@10", "precision@5", "ndcg"]
    ref = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), names)
    ours = M.evaluate(run, qrels, names)
    for name in names:
        assert ours[name] == pytest.approx(ref[name], abs=1e-9), name


def test_per_query_agrees_with_ranx():
    ranx = pytest.importorskip("ranx")
    qrels, run = random_runs(3, n_queries=20)
    r = ranx.Run(run)
    ranx.evaluate(ranx.Qrels(qrels), r, "ndcg@10")
    ref = [r.scores["ndcg@10"][q] for q in sorted(qrels)]
    assert M.per_query(run, qrels, "ndcg@10") == pytest.approx(ref, abs=1e-9)


def test_tiny_example_by_hand():
    judged = {"a": 3, "b": 1, "c": 0}
    docs = ["x", "b", "a", "c"]  # relevant at ranks 2 (grade 1) and 3 (grade 3)
    dcg = 1 / math.log2(3) + 3 / math.log2(4)
    idcg = 3 / math.log2(2) + 1 / math.log2(3)
    assert M.ndcg(docs, judged, k=10) == pytest.approx(dcg / idcg)
    assert M.ndcg(docs, judged, k=1) == 0.0
    assert M.recall(docs, judged, k=2) == 0.5
    assert M.mrr(docs, judged, k=10) == 0.5
    assert M.mrr(docs, judged, k=1) == 0.0
    assert M.average_precision(docs, judged) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert M.precision(docs, judged, k=4) == 0.5
    assert (M.success(docs, judged, k=1), M.success(docs, judged, k=2), M.success(["x", "c"], judged, k=10)) == (0, 1, 0)


def test_success_agrees_with_ranx_hit_rate():
    ranx = pytest.importorskip("ranx")
    qrels, run = random_runs(4)
    for k in (1, 3, 10):
        ref = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), f"hit_rate@{k}")
        assert M.evaluate(run, qrels, f"success@{k}")[f"success@{k}"] == pytest.approx(ref, abs=1e-12), k


def test_missing_queries_score_zero_and_unjudged_are_skipped():
    qrels = {"q1": {"a": 1}, "q2": {"b": 2}, "q3": {"c": 0}}
    run = {"q1": ["a", "z"]}  # q2 not answered, q3 has no relevant document
    assert M.per_query(run, qrels, "mrr@10").tolist() == [1.0, 0.0]
    assert M.evaluate(run, qrels, ["recall@100"]) == {"recall@100": 0.5}


def test_dict_runs_rank_by_score_then_id():
    assert M.ranked({"b": 1.0, "a": 1.0, "c": 2.0}) == ["c", "a", "b"]


@pytest.mark.parametrize("name", ["ndgc@10", "ndcg@0", "recall@-1", "f1"])
def test_unknown_metric_names(name):
    with pytest.raises(InputError, match=f"unknown metric '{name}': use one of ndcg, recall, mrr, map"):
        M.evaluate({"q": ["a"]}, {"q": {"a": 1}}, [name])


def test_bad_qrels_and_runs():
    with pytest.raises(InputError, match="qrels hold no relevant document"):
        M.evaluate({"q": ["a"]}, {"q": {"a": 0}})
    with pytest.raises(InputError, match="run must be a dict"):
        M.evaluate([["a"]], {"q": {"a": 1}})
    with pytest.raises(InputError, match="got the string 'a'"):
        M.evaluate({"q": "a"}, {"q": {"a": 1}})
    with pytest.raises(InputError, match="k must be a positive integer or None"):
        M.ndcg(["a"], {"a": 1}, k=0)


def test_bootstrap_ci_covers_the_mean_and_shrinks_with_more_queries():
    rng = np.random.default_rng(0)
    small = rng.random(30)
    big = rng.random(3000)
    e1, e2 = M.bootstrap_ci(small), M.bootstrap_ci(big)
    assert e1.low < e1.mean < e1.high and e2.low < e2.mean < e2.high
    assert (e2.high - e2.low) < (e1.high - e1.low) / 5
    # the percentile interval is close to the normal approximation mean +- 1.96 * sd / sqrt(n)
    half = 1.96 * big.std(ddof=1) / np.sqrt(big.size)
    assert (e2.high - e2.low) / 2 == pytest.approx(half, rel=0.1)
    assert M.bootstrap_ci(small, seed=1).mean == e1.mean
    assert str(e1).count("[") == 1


def test_paired_bootstrap_detects_a_real_difference_only():
    rng = np.random.default_rng(1)
    base = rng.random(200)
    better = np.clip(base + 0.1 + rng.normal(0, 0.05, 200), 0, 1)
    noise = np.clip(base + rng.normal(0, 0.05, 200), 0, 1)
    c = M.paired_bootstrap(better, base)
    assert c.diff > 0.05 and c.low > 0 and c.p_value < 0.001
    c0 = M.paired_bootstrap(noise, base)
    assert c0.low < 0 < c0.high and c0.p_value > 0.05
    assert M.paired_bootstrap(base, base).p_value == 1.0
    assert M.paired_bootstrap(base, better).diff == pytest.approx(-c.diff)


def test_bootstrap_bad_inputs():
    with pytest.raises(InputError, match="A has 3 per-query scores but B has 2"):
        M.paired_bootstrap([1, 2, 3], [1, 2])
    with pytest.raises(InputError, match="must be a non-empty 1-d list"):
        M.bootstrap_ci([])
    with pytest.raises(InputError, match="contain NaN or inf"):
        M.bootstrap_ci([0.1, float("nan")])
    with pytest.raises(InputError, match="confidence must be between 0 and 1"):
        M.bootstrap_ci([0.1, 0.2], confidence=95)
    with pytest.raises(InputError, match="n_resamples must be an integer of at least 100"):
        M.bootstrap_ci([0.1, 0.2], n_resamples=10)
