"""The engine's hybrid mode, the evaluation runner and team-draft interleaving."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from searchkit.corpus.datasets import Corpus, Dataset
from searchkit.engine import SearchSettings
from searchkit.errors import InputError
from searchkit.relevance.evaluate import System, evaluate_engine, evaluate_systems
from searchkit.relevance.interleave import ClickModel, interleave, team_draft

JSON_KEYS = {"system", "ndcg_at_10", "ndcg_ci_low", "ndcg_ci_high", "recall_at_100", "mrr_at_10", "ms_per_query"}


# -- hybrid mode of the engine ------------------------------------------------------------------


@pytest.mark.parametrize("fusion", ["rrf", "minmax", "zscore"])
def test_hybrid_fuses_the_candidates_of_both_modes(pydocs_engine, fusion):
    q = "delete a directory tree recursively"
    hits = pydocs_engine.search(q, k=10, mode="hybrid", fusion=fusion)
    assert len(hits) == 10 and all(hits[i].score >= hits[i + 1].score for i in range(9))
    assert len({h.id for h in hits}) == 10
    top = {m: [h.id for h in pydocs_engine.search(q, k=100, mode=m)] for m in ("bm25", "dense")}
    assert {h.id for h in hits} <= set(top["bm25"]) | set(top["dense"])
    assert hits[0].id in top["bm25"][:10] or hits[0].id in top["dense"][:10]
    assert "shutil.rmtree" in [h.id for h in hits]  # both modes rank it high


def test_hybrid_default_fusion_and_settings(pydocs_engine):
    q = "read a json file"
    rrf = pydocs_engine.search(q, k=5, mode="hybrid")
    assert rrf == pydocs_engine.search(q, k=5, mode="hybrid", fusion="rrf")
    assert max(h.score for h in rrf) <= 2 / 61  # RRF scores: at most 1/(60+1) from each list
    dense = [h.id for h in pydocs_engine.search(q, k=5, mode="dense")]
    all_dense = SearchSettings(mode="hybrid", weights=(0.0, 1.0))  # all weight on dense: dense order
    assert [h.id for h in pydocs_engine.search(q, k=5, settings=all_dense)] == dense
    all_bm25 = SearchSettings(mode="hybrid", weights=(1.0, 0.0))
    assert [h.id for h in pydocs_engine.search(q, k=5, settings=all_bm25)] == [
        h.id for h in pydocs_engine.search(q, k=5, mode="bm25")]


def test_hybrid_bad_inputs(pydocs_engine):
    with pytest.raises(InputError, match="unknown fusion 'max': choose one of rrf, minmax, zscore"):
        pydocs_engine.search("json", mode="hybrid", fusion="max")
    with pytest.raises(InputError, match="k must be a positive integer, got 0"):
        pydocs_engine.search("json", k=0, mode="hybrid")
    with pytest.raises(InputError, match="query 0 is '  ': give a non-empty string"):
        pydocs_engine.search("  ", mode="hybrid")


def test_hybrid_needs_bm25(pydocs_engine):
    from searchkit.engine import SearchEngine

    no_bm25 = SearchEngine(pydocs_engine.corpus, pydocs_engine.embedder, pydocs_engine.index, None)
    with pytest.raises(InputError, match="hybrid mode needs a BM25 index: build the engine with bm25=True"):
        no_bm25.search("json", mode="hybrid")


# -- the evaluation runner ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy():
    ids = [f"d{i}" for i in range(30)]
    corpus = Corpus(ids, ids, [f"text {i}" for i in range(30)])
    qrels = {f"q{i}": {f"d{i}": 2, f"d{i + 10}": 1} for i in range(10)}
    return Dataset("toy", corpus, {q: f"query {q}" for q in qrels}, qrels)


def oracle(toy):
    """A search function that returns the judged documents first, best grade first."""

    def search(queries, k):
        by_text = {t: q for q, t in toy.queries.items()}
        out = []
        for text in queries:
            judged = sorted(toy.qrels[by_text[text]].items(), key=lambda x: -x[1])
            rest = [d for d in toy.corpus.ids if d not in dict(judged)]
            out.append([(d, 1.0 / (r + 1)) for r, d in enumerate([d for d, _ in judged] + rest)][:k])
        return out

    return search


def shuffled(seed):
    def search(queries, k):
        rng = np.random.default_rng(seed)
        return [[(f"d{j}", 1.0 / (r + 1)) for r, j in enumerate(rng.permutation(30)[:k])] for _ in queries]

    return search


def test_runner_table_json_and_comparison(toy):
    rep = evaluate_systems({"oracle": oracle(toy), "random": shuffled(0)}, toy, k=100, n_resamples=1000)
    assert rep.queries == sorted(toy.qrels)
    o, r = rep["oracle"], rep["random"]
    assert o.estimates["ndcg@10"].mean == 1.0 and o.estimates["recall@100"].mean == 1.0
    assert o.estimates["mrr@10"].mean == 1.0 and o.estimates["map"].mean == 1.0
    assert r.estimates["ndcg@10"].low <= r.estimates["ndcg@10"].mean <= r.estimates["ndcg@10"].high
    assert r.estimates["recall@100"].mean == 1.0  # 30 documents, all retrieved
    rows = rep.json_rows()
    assert [set(row) for row in rows] == [JSON_KEYS, JSON_KEYS] and json.dumps(rows)
    assert rows[0]["system"] == "oracle" and rows[0]["ms_per_query"] >= 0
    c = rep.compare("oracle", "random")
    assert c.diff > 0.3 and c.low > 0 and c.p_value < 0.01
    assert rep.wins("oracle", "random")["random"] == 0
    text = rep.table()
    lines = text.splitlines()
    assert lines[0].split() == ["system", "ndcg@10", "recall@100", "mrr@10", "map", "ms/query"], text
    ci = r"(\d\.\d{3}) \[(\d\.\d{3}), (\d\.\d{3})\]"  # mean [low, high], three decimals
    rows_of = {line.split()[0]: re.findall(ci, line) for line in lines[2:]}
    assert rows_of["oracle"] == [("1.000", "1.000", "1.000")] * 4, text
    assert len(rows_of["random"]) == 4, text
    for m, (mean, low, high) in zip(rep.metrics, rows_of["random"]):
        e = r.estimates[m]
        assert (float(mean), float(low), float(high)) == (round(e.mean, 3), round(e.low, 3), round(e.high, 3)), m
        assert float(low) <= float(mean) <= float(high), m
    assert rows_of["random"][0][1] != rows_of["random"][0][2], text  # a real interval, not a point
    assert set(rep.per_query("mrr@10")["q0"]) == {"oracle", "random"}


def test_runner_on_a_query_subset_in_batches(toy):
    rep = evaluate_systems({"oracle": oracle(toy)}, toy, queries=["q3", "q1"], batch_size=2, n_resamples=200)
    assert rep.queries == ["q1", "q3"] and rep["oracle"].values["ndcg@10"].tolist() == [1.0, 1.0]


def test_runner_bad_inputs(toy):
    with pytest.raises(InputError, match="k=10 is below the deepest metric cutoff 100"):
        evaluate_systems({"o": oracle(toy)}, toy, k=10)
    with pytest.raises(InputError, match="query 'nope' is not a judged query of 'toy'"):
        evaluate_systems({"o": oracle(toy)}, toy, queries=["nope"])
    with pytest.raises(InputError, match="no systems to evaluate"):
        evaluate_systems({}, toy)
    with pytest.raises(InputError, match="unknown metric 'ndgc@10'"):
        evaluate_systems({"o": oracle(toy)}, toy, metrics=["ndgc@10"])
    rep = evaluate_systems({"o": oracle(toy)}, toy, metrics=["ndcg@10"], k=10, n_resamples=200)
    with pytest.raises(InputError, match="no system named 'x' in this report: choose one of o"):
        rep["x"]
    with pytest.raises(InputError, match="the report lacks recall@100, mrr@10"):
        rep.json_rows()


def test_engine_modes_on_judged_python_docs(pydocs, pydocs_engine):
    subset = sorted(pydocs.judged_queries())[:60]
    rep = evaluate_engine(
        pydocs_engine, pydocs, modes=("bm25", "dense", "hybrid:rrf"), queries=subset, batch_size=30, n_resamples=500
    )
    nd = {n: r.estimates["ndcg@10"].mean for n, r in rep.results.items()}
    assert all(0 < v <= 1 for v in nd.values())
    assert nd["dense"] > nd["bm25"]  # the lesson's story: paraphrased questions defeat keywords
    assert nd["hybrid:rrf"] > nd["bm25"]
    z = System.of(pydocs_engine, "hybrid:zscore")
    assert (z.name, z.mode, z.fusion) == ("hybrid:zscore", "hybrid", "zscore")
    some = [pydocs.queries[q] for q in subset[:5]]
    want = [[(h.id, h.score) for h in row] for row in pydocs_engine.search_many(some, 10, mode="hybrid", fusion="zscore")]
    assert z.search(some, 10) == want  # the fusion named in the spec is the one searched with
    assert z.search(some, 10) != System.of(pydocs_engine, "hybrid:rrf").search(some, 10)  # and it matters


# -- interleaving -------------------------------------------------------------------------------


def test_team_draft_is_fair_and_keeps_each_order():
    rng = np.random.default_rng(0)
    a, b = list("abcdefgh"), list("cbaxyzgh")
    for _ in range(50):
        shown, team = team_draft(a, b, 8, rng)
        assert len(shown) == len(set(shown)) == 8
        assert abs(team.count(0) - team.count(1)) <= 1
        for t, ranking in ((0, a), (1, b)):
            picked = [d for d, tt in zip(shown, team) if tt == t]
            assert picked == sorted(picked, key=ranking.index)
    shown, team = team_draft(["a"], ["b", "c", "d"], 10, rng)  # A runs out: B fills the page
    assert sorted(shown) == ["a", "b", "c", "d"] and team.count(0) == 1


def test_interleaving_prefers_the_better_system(toy):
    good = evaluate_systems({"o": oracle(toy)}, toy, metrics=["ndcg@10"], k=10, n_resamples=200)["o"].run
    bad = {q: [(f"d{j}", 0.0) for j in range(20, 30)] for q in toy.qrels}
    res = interleave(good, bad, toy.qrels, impressions=20, names=("good", "bad"))
    assert res.wins_a > 0.8 * res.impressions and res.wins_b < 0.1 * res.impressions and res.p_value < 1e-6
    assert res.preference > 0.7 and "good wins" in str(res)
    same = interleave(good, good, toy.qrels, impressions=20, seed=1)
    assert abs(same.preference) < 0.25 and same.p_value > 0.01


def test_click_model_follows_grades():
    rng = np.random.default_rng(0)
    model = ClickModel(click=(0.0, 1.0), stop=(0.0, 1.0))
    assert model.clicks(["x", "r", "s"], {"r": 1, "s": 1}, rng) == [1]
    assert ClickModel(click=(0.0, 1.0), stop=(0.0, 0.0)).clicks(["x", "r", "s"], {"r": 1, "s": 1}, rng) == [1, 2]


def test_interleave_bad_inputs(toy):
    with pytest.raises(InputError, match="impressions must be a positive integer, got 0"):
        interleave({}, {}, toy.qrels, impressions=0)
    with pytest.raises(InputError, match="k must be a positive integer, got -1"):
        interleave({}, {}, toy.qrels, k=-1)
