"""Matryoshka truncation: cut vectors renormalized, scored per size; the two figures of notebook 09."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from searchkit.corpus.datasets import Corpus, Dataset
from searchkit.errors import InputError
from searchkit.measure.plots import plot_dims_vs_quality, plot_training_curve
from searchkit.relevance.evaluate import evaluate_dims, truncate_dims


def test_truncate_dims_keeps_the_first_columns_at_unit_length():
    x = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    y = truncate_dims(x, 3)
    assert y.shape == (5, 3) and y.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(y * np.linalg.norm(x[:, :3], axis=1, keepdims=True), x[:, :3], rtol=1e-5)
    with pytest.raises(InputError, match="dims"):
        truncate_dims(x, 9)


class FixedEmbedder:
    """Vectors by text: the first two dimensions tell documents apart, the last two mislead."""

    def __init__(self, table):
        self.table = table

    def encode(self, texts, progress=None):
        return np.array([self.table[t] for t in texts], dtype=np.float32)

    encode_cached = encode


class FakeEngine:
    def __init__(self, table):
        self.embedder = FixedEmbedder(table)


def test_evaluate_dims_scores_each_size():
    corpus = Corpus(["a", "b"], ["", ""], ["doc a", "doc b"])
    ds = Dataset("t", corpus, {"q1": "find a", "q2": "find b"}, {"q1": {"a": 1}, "q2": {"b": 1}})
    table = {"doc a": [1, 0, 0, 1], "doc b": [0, 1, 1, 0], "find a": [1, 0, 1, 0], "find b": [0, 1, 0, 1]}
    table = {t: np.array(v, np.float32) / np.linalg.norm(v) for t, v in table.items()}
    rows = evaluate_dims(FakeEngine(table), ds, dims=(4, 2), metrics=("ndcg@10", "mrr@10"), name="m")
    assert [(r["model"], r["dims"], r["bytes"]) for r in rows] == [("m", 4, 16), ("m", 2, 8)]
    assert rows[1]["mrr@10"] == pytest.approx(1.0)  # the first two dimensions alone rank right
    assert rows[0]["mrr@10"] == pytest.approx(0.75)  # all four: a tie, broken by corpus order (a first)


def test_plots_have_labels():
    fig = plot_training_curve([0, 10, 20], {"training": [0.5, 0.7, 0.9], "held-out": [0.5, 0.6, 0.55]})
    ax = fig.axes[0]
    assert ax.get_xlabel().startswith("training steps") and "nDCG" in ax.get_ylabel()
    assert "step 10" in " ".join(t.get_text() for t in ax.get_legend().get_texts())
    with pytest.raises(InputError, match="one value per step"):
        plot_training_curve([0, 10], {"training": [0.5]})
    rows = [{"model": m, "dims": d, "ndcg@10": v} for m in ("base", "tuned") for d, v in ((384, 0.6), (64, 0.5))]
    ax = plot_dims_vs_quality(rows).axes[0]
    assert len(ax.get_lines()) == 2 and "dimensions" in ax.get_xlabel()
