"""Index choice under a budget: the choice never breaks a target it was given; the table and advice explain."""

from __future__ import annotations

import math

import pytest

from searchkit.corpus.loaders import format_size, parse_size
from searchkit.corpus.synthetic import isotropic_clusters
from searchkit.errors import InputError
from searchkit.index.budget import candidate_factories, choose_index
from searchkit.measure.bench import index_bytes, recall_at_k

DIM = 32


def _data(n: int):
    xb = isotropic_clusters(n, DIM, n_clusters=max(4, n // 50), spread=0.6, seed=1)
    xq = isotropic_clusters(60, DIM, n_clusters=max(4, n // 50), spread=0.6, seed=2)
    return xb, xq


@pytest.mark.parametrize("n", [300, 1500, 3000])
@pytest.mark.parametrize("memory, recall, latency", [("1MB", 0.95, None), ("40KB", 0.9, None), ("2MB", 0.99, 5.0)])
def test_the_choice_never_breaks_a_target(n, memory, recall, latency):
    xb, xq = _data(n)
    budget = parse_size(memory)
    choice = choose_index(xb, budget, recall, latency, xq=xq)
    assert len(choice.candidates) == len(candidate_factories(n, DIM))
    if choice.chosen is None:
        with pytest.raises(InputError, match=r"no index (meets every target|could be measured).*--(max-memory|min-recall|max-latency-ms)"):
            choice.spec()
        assert not any(c.ok for c in choice.candidates)
        return
    c = choice.chosen
    assert c.memory <= budget and c.recall >= recall and (latency is None or c.p99_ms <= latency)
    # the measured index is the one returned (the sample was every vector): check it again from scratch
    index = choice.index
    assert index is not None and len(index) == n and index.factory == c.factory
    assert index_bytes(index) <= budget
    found = index.search_raw(xq, 10, **({"nprobe": c.nprobe} if c.nprobe else {}),
                             **({"ef_search": c.ef_search} if c.ef_search else {}))[1]
    from searchkit.measure.bench import ground_truth

    assert recall_at_k(found, ground_truth(xb, xq, 10), 10) >= recall
    # the cheapest: no other candidate meeting every target needs less memory
    assert all(o.memory >= c.memory for o in choice.candidates if o.ok)
    assert c.verdict.startswith("chosen") and choice.spec().factory == c.factory


def test_a_tight_budget_says_which_target_to_relax_and_by_how_much():
    xb, xq = _data(1500)
    choice = choose_index(xb, parse_size("8KB"), 0.5, xq=xq)
    assert choice.chosen is None
    assert all("memory" in c.misses or "too few" in c.verdict for c in choice.candidates)  # all lost on memory
    fixable = [c for c in choice.candidates if list(c.misses) == ["memory"]]
    cheapest = min(fixable, key=lambda c: c.memory)
    assert f"relax one: --max-memory {format_size(cheapest.memory * 1.05).replace(' ', '')}" in choice.advice
    assert f"lets {cheapest.factory} through" in choice.advice
    text = str(choice)
    assert "nothing fits" in text and "verdict" in text


def test_each_target_that_blocks_gets_its_own_advice():
    xb, xq = _data(1500)
    choice = choose_index(xb, parse_size("200KB"), 0.9999, max_latency_ms=0.001, xq=xq)
    assert choice.chosen is None
    for c in choice.candidates:  # every verdict names each target the candidate misses
        assert ("needs" in c.verdict) == ("memory" in c.misses) and ("p99" in c.verdict) == ("latency" in c.misses)
    assert all("latency" in c.misses for c in choice.candidates if not math.isnan(c.p99_ms))
    only_slow = [c for c in choice.candidates if list(c.misses) == ["latency"]]
    assert only_slow  # SQfp16 fits 200 KB with recall 1.0, but nothing answers in 1 microsecond
    fastest = min(only_slow, key=lambda c: c.p99_ms)
    assert f"relax one: --max-latency-ms {math.ceil(fastest.p99_ms * 110) / 100} lets {fastest.factory} through" in choice.advice
    two = choose_index(xb, parse_size("30KB"), 0.9999, max_latency_ms=0.001, xq=xq)
    assert "no single change is enough" in two.advice and "--max-latency-ms" in two.advice


def test_held_out_queries_measure_a_sample_and_return_no_index():
    xb, _ = _data(1500)
    choice = choose_index(xb, parse_size("1MB"), 0.9, sample=1000)
    assert choice.sampled == 1000 and choice.index is None and choice.chosen is not None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_memory": 0}, "max_memory must be a positive number of bytes"),
        ({"max_memory": 10**6, "min_recall": 1.5}, r"min_recall must be in \(0, 1\]"),
        ({"max_memory": 10**6, "max_latency_ms": -1}, "max_latency_ms must be positive"),
    ],
)
def test_bad_targets_are_refused(kwargs, message):
    xb, _ = _data(300)
    with pytest.raises(InputError, match=message):
        choose_index(xb, **kwargs)
