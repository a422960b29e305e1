"""Measurement tools: percentiles, recall, ground truth, sweeps and the Pareto frontier."""

from __future__ import annotations

import time

import numpy as np
import pytest

from searchkit.errors import InputError
from searchkit.index.vector import VectorIndex
from searchkit.measure.bench import (
    ROW_KEYS,
    OperatingPoint,
    Timer,
    best_at_recall,
    faiss_threads,
    ground_truth,
    index_bytes,
    measure_codecs,
    measure_operating_point,
    pareto_front,
    percentiles,
    recall_at_k,
    sweep,
    thread_count,
    time_batch,
    time_single,
)
from searchkit.measure.plots import plot_pareto
from searchkit.measure.report import format_table


def point(name: str, recall: float, p50: float) -> OperatingPoint:
    return OperatingPoint(name, "-", recall, p50, p50, p50, 1.0)


def test_percentiles_on_known_data():
    p = percentiles(np.arange(1, 101))
    assert p == pytest.approx({"p50": 50.5, "p95": 95.05, "p99": 99.01})
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0}
    with pytest.raises(InputError, match="no latency samples"):
        percentiles([])


def test_recall_of_flat_against_itself_is_one(unit_vectors):
    xb, xq = unit_vectors(2000, 16, seed=0), unit_vectors(50, 16, seed=1)
    truth = ground_truth(xb, xq, 10)
    index = VectorIndex.build([str(i) for i in range(len(xb))], xb, "Flat")
    _, I = index.search_raw(xq, 10)
    assert recall_at_k(I, truth, 10) == 1.0
    want = np.argsort(-(xq @ xb.T), axis=1)[:, :10]
    assert recall_at_k(truth, want, 10) == 1.0


def test_recall_counts_overlap_and_ignores_missing():
    assert recall_at_k([[1, 2, 3, -1]], [[1, 2, 4, 5]], 4) == 0.5
    assert recall_at_k([["a", "b"], ["c", "x"]], [["a", "b"], ["c", "d"]], 2) == 0.75
    with pytest.raises(InputError, match="results for 1 queries but ground truth for 2"):
        recall_at_k([[1]], [[1], [2]])


def test_pareto_front_on_hand_made_points():
    pts = [
        point("a", 0.50, 1.0),
        point("b", 0.80, 2.0),
        point("c", 0.70, 3.0),  # dominated by b
        point("d", 0.95, 5.0),
        point("e", 0.95, 6.0),  # same recall, slower
        point("f", 0.40, 1.5),  # dominated by a
        point("g", 1.00, 20.0),
    ]
    assert [p.index for p in pareto_front(pts)] == ["a", "b", "d", "g"]
    assert best_at_recall(pts, 0.9).index == "d"
    assert best_at_recall(pts, 1.01) is None


def test_timers_and_thread_count():
    with Timer() as t:
        time.sleep(0.02)
    assert 0.02 <= t.s < 5 and t.ms == pytest.approx(t.s * 1000)  # sleep waits at least that long; 5 s: a stall
    before = thread_count()
    with faiss_threads(1) as n:
        assert n == 1 == thread_count()
    assert thread_count() == before
    lat = time_single(lambda q: q.sum(), np.ones((20, 4), np.float32), warmup=2, repeats=2, per_query="min")
    assert lat.n == 20 and lat.threads == 1 and lat.p50_ms <= lat.p99_ms <= lat.p99_raw_ms + 1e-9
    assert lat.p99_min_ms == pytest.approx(lat.p99_ms)  # per_query="min": the noise-reduced p99 is the headline one
    raw = time_single(lambda q: q.sum(), np.ones((20, 4), np.float32), warmup=2, repeats=3, per_query="all")
    assert raw.n == 60 and raw.p99_ms == pytest.approx(raw.p99_raw_ms) and raw.p99_min_ms <= raw.p99_raw_ms + 1e-9
    shapes = []

    def slow(q):  # 10 ms per call, however many queries: at most 1000 / 0.01 = 100,000 queries per second
        shapes.append(q.shape)
        time.sleep(0.01)

    qps = time_batch(slow, np.ones((1000, 4), np.float32), repeats=3)
    assert shapes == [(16, 4)] + [(1000, 4)] * 3  # one small warm-up, then three timed runs over all the queries
    # queries (not calls) per second: above 1000 / 5 unless a 10 ms call stalled past 5 s (calls/s is <= 100)
    assert 1000 / 5 < qps <= 100_000


def test_sweep_measures_each_setting(unit_vectors):
    xb, xq = unit_vectors(3000, 16, seed=0), unit_vectors(40, 16, seed=1)
    truth = ground_truth(xb, xq, 10)
    index = VectorIndex.build([str(i) for i in range(len(xb))], xb, "IVF16,Flat")
    pts = sweep(index, xq, truth, "nprobe", [1, 16], latency_queries=10, bytes_per_vector=index_bytes(index) / len(xb))
    assert [p.params for p in pts] == ["nprobe=1", "nprobe=16"]
    assert pts[1].recall == 1.0 and pts[0].recall < 1.0
    assert set(pts[0].row()) == set(ROW_KEYS) and pts[0].row()["recall_at_10"] == pts[0].recall
    assert 64 <= pts[0].bytes_per_vector < 200
    assert "nprobe=16" in format_table(pts)
    with pytest.raises(InputError, match="unknown search parameter 'efSearch'"):
        sweep(index, xq, truth, "efSearch", [1])
    one = measure_operating_point(VectorIndex.build(["a", "b"], xb[:2]), xb[:2], np.array([[0], [1]]), k=1)
    assert one.recall == 1.0


def test_plot_pareto_has_labels():
    import matplotlib

    matplotlib.use("Agg")
    ax = plot_pareto([point("HNSW32", 0.9, 0.1), point("Flat", 1.0, 5.0)], title="t")
    assert ax.get_title() == "t" and "ms" in ax.get_xlabel() and "recall" in ax.get_ylabel()


def test_faiss_flat_ground_truth_matches_numpy(unit_vectors):
    xb, xq = unit_vectors(500, 8, seed=3), unit_vectors(5, 8, seed=4)
    assert (ground_truth(xb, xq, 5) == np.argsort(-(xq @ xb.T), axis=1)[:, :5]).all()
    squared = ((xq[:, None, :] - xb[None, :, :]) ** 2).sum(axis=2)
    assert (ground_truth(xb, xq, 5, metric="l2") == np.argsort(squared, axis=1)[:, :5]).all()


def test_measure_codecs_rows(unit_vectors):
    xb, xq = unit_vectors(2000, 16, seed=0), unit_vectors(30, 16, seed=1)
    qrels = {str(i): {str(i): 1} for i in range(30)}  # each query's own row number is its relevant document
    rows = measure_codecs(["Flat", "IVF16,SQ8", "int8", "Binary"], xb, xq, qrels=qrels, qids=list(qrels),
                          nprobe=16, max_train=2000, timing_queries=20)  # fmt: skip
    by = {r["index"]: r for r in rows}
    assert list(by) == ["Flat", "IVF16,SQ8 (nprobe=16)", "int8", "Binary"]
    assert by["Flat"]["recall_at_10"] == 1.0 and by["Flat"]["build_s"] == 0.0
    assert by["Flat"]["bytes_per_vector"] > by["int8"]["bytes_per_vector"] > by["Binary"]["bytes_per_vector"]
    assert by["Binary"]["recall_at_10"] < by["Binary"]["recall_at_10_reranked"] <= 1.0
    assert all(0 < r["p50_ms"] <= r["p99_ms"] for r in rows) and all(r["ndcg_at_10"] is not None for r in rows)


def test_measure_codecs_sweeps_ratios_on_one_build(unit_vectors, monkeypatch):
    from searchkit.measure import bench

    builds = []
    real = bench.build_index
    monkeypatch.setattr(bench, "build_index", lambda f, *a, **kw: (builds.append(f), real(f, *a, **kw))[1])
    xb, xq = unit_vectors(3000, 16, seed=0), unit_vectors(40, 16, seed=1)
    rows = measure_codecs(["IVF16,PQ4"], xb, xq, ratio=[1, 4, 20], nprobe=4, max_train=3000, timing_queries=10)
    assert builds == ["Flat", "IVF16,PQ4"]  # exact truth once, the compressed index once
    assert [r["ratio"] for r in rows] == [1, 4, 20] and len({r["bytes_per_vector"] for r in rows}) == 1
    recalls = [r["recall_at_10_reranked"] for r in rows]
    assert recalls == sorted(recalls) and recalls[0] < recalls[-1]  # more candidates re-ranked: more found
