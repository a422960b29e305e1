"""Reciprocal rank fusion and normalized score fusion, checked on small hand-made lists."""

from __future__ import annotations

import pytest

from searchkit.errors import InputError
from searchkit.relevance.fusion import fuse, normalize, rrf, score_fusion

BM25 = [("a", 12.0), ("b", 9.0), ("c", 1.0)]
DENSE = [("c", 0.9), ("a", 0.8), ("d", 0.7)]


def test_rrf_by_hand():
    out = dict(rrf([BM25, DENSE], k=60))
    assert out["a"] == pytest.approx(1 / 61 + 1 / 62)
    assert out["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert out["d"] == pytest.approx(1 / 63)
    assert [d for d, _ in rrf([BM25, DENSE])] == ["a", "c", "b", "d"]


def test_rrf_k_and_weights_and_limit():
    assert [d for d, _ in rrf([BM25, DENSE], k=0, weights=[0.0, 1.0])][:3] == ["c", "a", "d"]
    assert len(rrf([BM25, DENSE], limit=2)) == 2
    # small k rewards the very top of each list more
    assert dict(rrf([BM25, DENSE], k=1))["a"] > dict(rrf([BM25, DENSE], k=1))["c"]


def test_rrf_ignores_scores_scale():
    scaled = [(d, s * 1000) for d, s in BM25]
    assert rrf([BM25, DENSE]) == rrf([scaled, DENSE])


def test_normalize():
    assert normalize([3.0, 1.0, 2.0]).tolist() == [1.0, 0.0, 0.5]
    z = normalize([1.0, 2.0, 3.0], "zscore")
    assert z.mean() == pytest.approx(0) and z.std() == pytest.approx(1)
    assert normalize([5.0, 5.0]).tolist() == [1.0, 1.0]
    assert normalize([5.0, 5.0], "zscore").tolist() == [0.0, 0.0]
    assert normalize([]).size == 0


def test_minmax_fusion_by_hand():
    out = dict(score_fusion([BM25, DENSE], "minmax"))
    assert out["a"] == pytest.approx(1.0 + 0.5)
    assert out["b"] == pytest.approx(8 / 11 + 0.0)  # missing from dense: 0
    assert out["c"] == pytest.approx(0.0 + 1.0)
    assert out["d"] == pytest.approx(0.0 + 0.0)
    weighted = dict(score_fusion([BM25, DENSE], "minmax", weights=[0.2, 0.8]))
    assert weighted["c"] == pytest.approx(0.8) and weighted["a"] == pytest.approx(0.2 + 0.4)


def test_zscore_fusion_missing_documents_get_the_list_minimum():
    out = dict(score_fusion([BM25, DENSE], "zscore"))
    zb, zd = normalize([12, 9, 1], "zscore"), normalize([0.9, 0.8, 0.7], "zscore")
    assert out["b"] == pytest.approx(zb[1] + zd.min())
    assert out["d"] == pytest.approx(zb.min() + zd[2])
    assert [d for d, _ in fuse([BM25, DENSE], "zscore")][0] == "a"


def test_one_list_keeps_its_order():
    for method in ("rrf", "minmax", "zscore"):
        assert [d for d, _ in fuse([BM25], method)] == ["a", "b", "c"]
    assert fuse([[], []], "minmax") == [] and fuse([[]], "rrf") == []


def test_bad_inputs():
    with pytest.raises(InputError, match="unknown fusion 'max': choose one of rrf, minmax, zscore"):
        fuse([BM25], "max")
    with pytest.raises(InputError, match="got 1 weights for 2 rankings"):
        rrf([BM25, DENSE], weights=[1.0])
    with pytest.raises(InputError, match="weights must be finite, non-negative and not all 0"):
        score_fusion([BM25, DENSE], weights=[-1, 1])
    with pytest.raises(InputError, match="RRF k must be a number >= 0"):
        rrf([BM25], k=-5)
    with pytest.raises(InputError, match="give a non-empty list of rankings"):
        rrf([])
    with pytest.raises(InputError, match="ranking 0 holds the bare id 'a'"):
        rrf([["a", "b"]])
    with pytest.raises(InputError, match="unknown normalization 'l2'"):
        score_fusion([BM25], "l2")
