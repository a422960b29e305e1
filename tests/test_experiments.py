"""Online-experiment statistics (against scipy and by hand), arm specs, assignment, the event store, power analysis."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest
from scipy.stats import binomtest, chi2_contingency

from searchkit.errors import ExperimentError, InputError, NotShownError, UnknownImpressionError
from searchkit.experiments import simulate as S
from searchkit.experiments.arms import Arm, assign, parse_arm, parse_arms
from searchkit.experiments.events import EventStore
from searchkit.experiments.live import Experiment
from searchkit.relevance import metrics as M
from searchkit.relevance.interleave import ClickModel

# -- statistics ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wins, losses", [(0, 0), (0, 7), (3, 10), (10, 3), (7, 8), (60, 40), (1000, 950), (5, 5)])
def test_sign_test_agrees_with_scipy(wins, losses):
    want = binomtest(wins, wins + losses, 0.5).pvalue if wins + losses else 1.0
    assert M.sign_test(wins, losses) == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_sign_test_by_hand_and_on_arrays():
    # 1 win, 5 losses: P(X <= 1) for Binomial(6, 1/2) = (1 + 6) / 64; two-sided doubles it
    assert M.sign_test(1, 5) == pytest.approx(14 / 64)
    got = M.sign_test(np.array([1, 5, 0]), np.array([5, 1, 0]))
    assert got.tolist() == pytest.approx([14 / 64, 14 / 64, 1.0])


@pytest.mark.parametrize("x, n", [(0, 10), (3, 10), (30, 100), (100, 100), (1, 1000), (517, 1200)])
def test_wilson_interval_agrees_with_scipy(x, n):
    ci = binomtest(x, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert M.proportion_ci(x, n) == pytest.approx((ci.low, ci.high), abs=1e-12)


@pytest.mark.parametrize("xa, na, xb, nb", [(30, 100, 45, 100), (120, 1000, 150, 1000), (5, 40, 2, 60), (0, 50, 3, 50)])
def test_two_proportion_p_value_agrees_with_scipy_chi_square(xa, na, xb, nb):
    want = chi2_contingency([[xa, na - xa], [xb, nb - xb]], correction=False)[1]
    assert M.two_proportion_test(xa, na, xb, nb).p_value == pytest.approx(want, rel=1e-9)


def test_two_proportion_test_by_hand():
    # 45/100 vs 30/100: difference 0.15; pooled rate 0.375, SE0 = sqrt(.375 * .625 * 2 / 100) = 0.0684653
    # z = 0.15 / 0.0684653 = 2.19089, two-sided p = 0.028460; Wald SE = sqrt(.2475/100 + .21/100) = 0.0676387
    d = M.two_proportion_test(45, 100, 30, 100)
    assert (d.mean_a, d.mean_b, d.diff, d.n) == pytest.approx((0.45, 0.30, 0.15, 200))
    assert d.p_value == pytest.approx(0.028460, abs=1e-6)
    assert (d.low, d.high) == pytest.approx((0.15 - 1.959964 * 0.0676387, 0.15 + 1.959964 * 0.0676387), abs=1e-6)
    assert str(d) == "+0.150 [+0.017, +0.283], p=0.0285"


def test_preference_by_hand():
    # 45 wins for A, 30 for B, 25 ties: preference (45 - 30) / 100 = 0.15; score variance .75 - .0225 = .7275
    p = M.preference_test(45, 30, 25)
    half = 1.959964 * math.sqrt(0.7275 / 100)
    assert (p.diff, p.low, p.high, p.mean_a, p.n) == pytest.approx((0.15, 0.15 - half, 0.15 + half, 0.45, 100), abs=1e-6)
    assert p.p_value == pytest.approx(binomtest(45, 75).pvalue)
    assert M.preference_test(0, 0, 0).p_value == 1.0


@pytest.mark.parametrize("call, message", [
    (lambda: M.sign_test(-1, 3), "wins must be counts of at least 0"),
    (lambda: M.sign_test(1.5, 3), "wins must be whole counts"),
    (lambda: M.proportion_ci(11, 10), "cannot exceed n"),
    (lambda: M.two_proportion_test(0, 0, 1, 5), "each arm needs at least one trial"),
    (lambda: M.proportion_ci(1, 10, confidence=95), "confidence must be between 0 and 1"),
])  # fmt: skip
def test_statistics_reject_bad_counts(call, message):
    with pytest.raises(InputError, match=message):
        call()


# -- arms and assignment --------------------------------------------------------------------------------------


def test_parse_arms():
    assert parse_arms("control=bm25, treatment=hybrid:zscore") == (
        Arm.of("control", "bm25"), Arm.of("treatment", "hybrid", "zscore"))  # fmt: skip
    assert parse_arm("b=hybrid").label == "hybrid"


def test_an_arm_carries_settings_and_keeps_the_engines_tuned_fusion():
    from searchkit.engine import SearchSettings

    tuned = SearchSettings(weights=(0.05, 0.95), rrf_k=10, nprobe=8)
    plain, zscore = parse_arm("c=hybrid"), parse_arm("t=hybrid:zscore")
    assert isinstance(zscore.preset, SearchSettings) and (zscore.mode, zscore.fusion) == ("hybrid", "zscore")
    assert plain.fusion is None and plain.settings(tuned) == tuned.with_(mode="hybrid")
    assert zscore.settings(tuned) == SearchSettings("hybrid", "zscore", (0.05, 0.95), 10, nprobe=8)


@pytest.mark.parametrize("spec, message", [
    ("control=bm25", "has 1 arm"),
    ("a=bm25,b=dense,c=hybrid", "has 3 arm"),
    ("control:bm25,treatment=dense", "is not NAME=MODE"),
    ("a=bm25,b=sparse", "unknown mode 'sparse'"),
    ("a=bm25,b=dense:rrf", "only hybrid fuses"),
    ("a=bm25,b=hybrid:max", "unknown fusion 'max'"),
    ("a=bm25,a=dense", "both arms are named 'a'"),
])  # fmt: skip
def test_bad_arm_specs_say_what_to_write(spec, message):
    with pytest.raises(ExperimentError, match=message):
        parse_arms(spec)


def test_assignment_is_stable_and_balanced():
    sessions = [f"s{i}" for i in range(4000)]
    first = [assign(s, "salt") for s in sessions]
    assert first == [assign(s, "salt") for s in sessions]
    assert 0.47 < np.mean(first) < 0.53
    assert first != [assign(s, "other salt") for s in sessions]  # another experiment reshuffles the sessions


# -- the event store ---------------------------------------------------------------------------------------------


ARMS = (Arm.of("control", "bm25"), Arm.of("treatment", "dense"))


def test_store_validates_and_deduplicates_clicks(tmp_path):
    store = EventStore(tmp_path / "events.db", "interleave", ARMS)
    store.add_impression("i1", "q", [("d1", 0), ("d2", 1), ("d3", 0)])
    store.add_impression("i2", "q", [("d2", 1), ("d1", 0)])
    assert store.add_click("i1", "d2") is True
    assert store.add_click("i1", "d2") is False  # acknowledged again, counted once
    assert store.add_click("i2", "d1") is True
    with pytest.raises(UnknownImpressionError, match="no impression 'nope'"):
        store.add_click("nope", "d1")
    with pytest.raises(NotShownError, match="did not show document 'd3'"):
        store.add_click("i2", "d3")
    counts = store.counts()
    assert (counts["impressions"], counts["clicks"], counts["wins"], counts["ties"], counts["clicked"]) == (2, 2, [1, 1], 0, 2)
    assert store.clicks_by_rank() == [0, 2]  # both clicks were on the second result
    store.close()
    mode = sqlite3.connect(tmp_path / "events.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_store_refuses_another_experiments_file(tmp_path):
    EventStore(tmp_path / "e.db", "split", ARMS).close()
    with pytest.raises(ExperimentError, match=r"holds another experiment \(split: control=bm25,treatment=dense\)"):
        EventStore(tmp_path / "e.db", "interleave", ARMS)
    with pytest.raises(ExperimentError, match="is a folder"):
        EventStore(tmp_path, "split", ARMS)


def test_split_summary_by_hand(tmp_path):
    exp = Experiment("control=bm25,treatment=dense", "split", tmp_path / "e.db")
    per_arm = {0: [], 1: []}
    for i in range(40):
        hits, imp, session = exp.search(lambda arm: [_Hit(f"{arm.mode}-{j}") for j in range(3)], "q", 3, f"s{i}")
        arm = assign(session, exp.salt)
        assert [h.id for h in hits] == [f"{ARMS[arm].mode}-{j}" for j in range(3)]
        per_arm[arm].append(imp)
        if len(per_arm[arm]) % (2 + arm) == 0:  # control: every 2nd impression clicked, treatment: every 3rd
            exp.click(imp, hits[0].id)
    s = exp.summary()
    n = [len(per_arm[0]), len(per_arm[1])]
    x = [n[0] // 2, n[1] // 3]
    assert s["arms"]["control"]["impressions"] == n[0] and s["arms"]["control"]["clicked"] == x[0]
    assert s["arms"]["treatment"]["ctr"] == pytest.approx(x[1] / n[1])
    assert s["arms"]["treatment"]["ctr_ci"] == pytest.approx(list(M.proportion_ci(x[1], n[1])))
    d = M.two_proportion_test(x[1], n[1], x[0], n[0])
    assert (s["difference"]["ctr"], s["difference"]["p_value"]) == pytest.approx((x[1] / n[1] - x[0] / n[0], d.p_value))
    assert (s["design"], s["impressions"], s["clicks"]) == ("split", 40, sum(x))


class _Hit:
    def __init__(self, id: str):
        self.id = id


# -- simulated users and power -------------------------------------------------------------------------------


def test_click_matrix_matches_the_one_user_model():
    model = ClickModel(patience=0.7)
    docs, judged = ["a", "b", "c", "d"], {"b": 2, "d": 1}
    rng = np.random.default_rng(0)
    one = np.zeros(4)
    for _ in range(4000):
        one[model.clicks(docs, judged, rng)] += 1
    many = model.click_matrix(docs, judged, 4000, np.random.default_rng(1)).sum(axis=0)
    assert np.allclose(one / 4000, many / 4000, atol=0.03), (one, many)
    assert many[1] > many[3]  # position bias and grades: the better, higher document gets more clicks


def test_power_grows_with_queries_and_a_a_stays_near_alpha():
    rates = S.Rates((0.30, 0.36), (0.15, 0.21, 0.03, 0.61), queries=1)
    null = S.Rates((0.30, 0.30), (0.18, 0.18, 0.03, 0.61), queries=1)
    assert S.power(rates, "split", 200) < S.power(rates, "split", 2000) > 0.8
    n_split, n_inter = S.queries_needed(rates, "split"), S.queries_needed(rates, "interleave")
    assert S.power(rates, "split", n_split) >= 0.8 > S.power(rates, "split", int(n_split * 0.8))
    assert n_inter < n_split
    for design in ("split", "interleave"):
        assert 0.02 < S.false_positive_rate(null, design, 1000, runs=4000) < 0.07
    assert S.peeking_false_positive_rate(null, "split", 2000, looks=20) > 0.12  # peeking inflates false positives
    assert S.peeking_false_positive_rate(null, "interleave", 2000, looks=1) < 0.07
    curve = S.power_curve(rates, null, weights=(0.5, 1.0))
    assert curve[0]["split"] > curve[1]["split"] and curve[0]["ctr_diff"] == pytest.approx(0.03)


def test_a_seeded_experiment_repeats_its_impressions(tmp_path):
    def run(path):
        exp = Experiment("a=bm25,b=dense", "interleave", path, seed=3)
        out = [exp.search(lambda arm: [_Hit(f"{arm.mode}{j}") for j in range(4)], "q", 4, "s") for _ in range(5)]
        exp.close()
        return [([h.id for h in hits], imp) for hits, imp, _ in out]

    first = run(tmp_path / "1.db")
    assert first == run(tmp_path / "2.db")
    assert len({imp for _, imp in first}) == 5 and len({tuple(ids) for ids, _ in first}) > 1


def test_a_a_rates_are_exactly_symmetric():
    run = {"q1": ["a", "b", "c"], "q2": ["c", "d", "a"]}
    qrels = {"q1": {"b": 2}, "q2": {"a": 1, "d": 1}}
    null = S.estimate_rates(run, run, qrels, k=3, sims=50)
    assert null.ctr[0] == null.ctr[1] and null.interleave[0] == null.interleave[1] and 0 < null.ctr[0] < 1
