"""Hybrid fusion tuned by cross-validation: the grid, the held-out folds, the shipped pydocs config."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from searchkit.cli import main
from searchkit.corpus.datasets import Dataset
from searchkit.engine import SearchSettings
from searchkit.errors import ExperimentError, InputError
from searchkit.experiments.arms import parse_arm
from searchkit.relevance.fusion import check_fusion
from searchkit.relevance.metrics import per_query
from searchkit.relevance.tuning import (
    DEFAULT_FUSION,
    PYDOCS_FUSION,
    apply_fusion,
    candidates,
    fusion_for,
    load_fusion,
    tune_fusion,
)


@pytest.fixture(scope="module")
def subset(pydocs) -> Dataset:
    """60 judged pydocs queries (a fixed sample: enough folds, seconds to run)."""
    qids = sorted(pydocs.judged_queries())[:60]
    return Dataset("pydocs-60", pydocs.corpus, {q: pydocs.queries[q] for q in qids}, {q: pydocs.qrels[q] for q in qids})


@pytest.fixture(scope="module")
def tuned(pydocs_engine, subset):
    return tune_fusion(pydocs_engine, subset, folds=3, seed=1)


def test_the_shipped_pydocs_config_loads_and_other_corpora_keep_the_default():
    shipped = json.loads(PYDOCS_FUSION.read_text())
    cfg = fusion_for("pydocs")
    assert cfg == SearchSettings.from_dict(shipped["config"]) == load_fusion()
    assert (cfg.fusion, cfg.weights, cfg.rrf_k, cfg.hybrid_depth) == ("rrf", (0.05, 0.95), 10, 100)  # "depth" is hybrid_depth
    assert SearchSettings.from_dict(cfg.to_dict()) == cfg and set(cfg.to_dict()) == set(shipped["config"])
    assert cfg in candidates()
    assert shipped["queries"] == 319 and len(shipped["folds"]) == 5
    assert fusion_for("beir:../shared/beir/scifact") == DEFAULT_FUSION == SearchSettings()
    assert str(DEFAULT_FUSION) == "rrf, k=60, weights bm25 1 / dense 1" and SearchSettings.from_dict({}) == DEFAULT_FUSION


def test_held_out_folds_cover_every_query_once(tuned, subset):
    assert tuned.qids == sorted(subset.judged_queries())
    assert [f["n"] for f in tuned.folds] == [20, 20, 20] and tuned.heldout.shape == (60,)
    assert np.isclose(sum(f["heldout"] * f["n"] for f in tuned.folds) / 60, tuned.heldout.mean())
    assert {f["chosen"] for f in tuned.folds} <= {str(c) for c in candidates()}
    assert set(tuned.baselines) == {"bm25", "dense", "hybrid-default", "hybrid-tuned (fit on all)"}
    assert "held-out" in tuned.table() and "fold" in tuned.fold_table()


def test_the_tuned_config_scores_the_same_through_the_engine(tuned, pydocs_engine, subset):
    """The offline grid fuses the same lists the engine fuses: applying the choice reproduces its scores."""
    engine = copy.copy(pydocs_engine)  # the shared engine keeps its own defaults
    apply_fusion(engine, tuned.best)
    assert (engine.defaults.fusion, engine.defaults.weights, engine.defaults.rrf_k) == (
        tuned.best.fusion, tuned.best.weights, tuned.best.rrf_k)  # fmt: skip
    hits = engine.search_many([subset.queries[q] for q in tuned.qids], 10, mode="hybrid")
    got = per_query({q: [h.id for h in row] for q, row in zip(tuned.qids, hits)}, subset.qrels, "ndcg@10", tuned.qids)
    assert np.allclose(got, tuned.baselines["hybrid-tuned (fit on all)"])
    assert tuned.baselines["hybrid-tuned (fit on all)"].mean() >= tuned.baselines["hybrid-default"].mean()


def test_bad_settings_name_the_value_and_the_fix(pydocs_engine, subset, tmp_path):
    with pytest.raises(InputError, match="folds must be an integer of at least 2"):
        tune_fusion(pydocs_engine, subset, folds=1)
    with pytest.raises(InputError, match="unknown fusion 'max'"):
        SearchSettings.from_dict({"fusion": "max"})
    with pytest.raises(InputError, match=r"weights must be two non-negative numbers .* got \(0, 0\)"):
        SearchSettings("hybrid", "rrf", (0, 0))
    bad = tmp_path / "fusion.json"
    bad.write_text("{oops")
    with pytest.raises(InputError, match=f"cannot read the fusion config {bad}.*tune-fusion"):
        load_fusion(bad)


def test_tune_fusion_command_writes_a_loadable_config(tmp_path, capsys, embedder):
    out = tmp_path / "fusion.json"
    assert main(["tune-fusion", "--corpus", "pydocs", "--backend", "torch", "--folds", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2-fold cross-validation, encoder torch" in text and "held-out" in text and "vs dense" in text
    saved = json.loads(out.read_text())
    assert saved["backend"] == "torch" and len(saved["folds"]) == 2
    assert load_fusion(out) == SearchSettings.from_dict(saved["config"])


def test_a_bad_fusion_name_is_refused_with_one_message_everywhere(tmp_path):
    """Settings, a tuned fusion file and an experiment arm all call the one check in relevance.fusion."""
    with pytest.raises(InputError) as one:
        check_fusion("max")
    message = str(one.value)
    assert message == "unknown fusion 'max': choose one of rrf, minmax, zscore"
    with pytest.raises(InputError) as settings:
        SearchSettings(mode="hybrid", fusion="max")  # type: ignore[arg-type]
    bad = tmp_path / "fusion.json"
    bad.write_text(json.dumps({"config": {"fusion": "max", "weights": [1, 1], "rrf_k": 60, "depth": 100}}))
    with pytest.raises(InputError) as tuning:
        load_fusion(bad)
    with pytest.raises(ExperimentError) as arm:
        parse_arm("treatment=hybrid:max")
    assert str(settings.value) == str(tuning.value) == message
    assert str(arm.value) == f"arm 'treatment=hybrid:max': {message}"
