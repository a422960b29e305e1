"""The engine and the command line answer real queries over the Python docs."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from searchkit.errors import InputError


def test_semantic_search_finds_rmtree(pydocs_engine):
    hits = pydocs_engine.search("delete a folder and everything inside it", k=3)
    assert "shutil.rmtree" in [h.id for h in hits]
    assert hits[0].score >= hits[-1].score
    assert set(hits[0].to_dict()) == {"id", "score", "title", "text"}


def test_keyword_search_misses_it(pydocs_engine):
    ids = [h.id for h in pydocs_engine.search("delete a folder and everything inside it", k=3, mode="bm25")]
    assert "shutil.rmtree" not in ids


def test_most_judged_queries_find_a_relevant_document(pydocs, pydocs_engine):
    from searchkit.relevance.metrics import evaluate

    qids = sorted(pydocs.judged_queries())
    results = pydocs_engine.search_many([pydocs.queries[q] for q in qids], k=10)
    run = {q: [h.id for h in hits] for q, hits in zip(qids, results)}
    assert evaluate(run, pydocs.qrels, "success@10")["success@10"] > 0.5


@pytest.mark.parametrize("query", ["", "   ", None])
def test_bad_queries(pydocs_engine, query):
    with pytest.raises(InputError, match="query 0 is .*: give a non-empty string"):
        pydocs_engine.search(query)


def test_unknown_mode(pydocs_engine):
    with pytest.raises(InputError, match="unknown mode 'fuzzy': choose one of dense, bm25"):
        pydocs_engine.search("x", mode="fuzzy")


def test_cli_json_answers_several_queries_in_one_process():
    out = subprocess.run(
        [sys.executable, "-m", "searchkit", "search", "--json", "-k", "3",
         "delete a folder and everything inside it", "join two paths"],
        capture_output=True, text=True, check=True, timeout=300,
    ).stdout.splitlines()  # fmt: skip
    rows = [json.loads(line) for line in out]
    assert [r["query"] for r in rows] == ["delete a folder and everything inside it", "join two paths"]
    assert "shutil.rmtree" in [h["id"] for h in rows[0]["results"]]
    assert set(rows[0]["results"][0]) == {"id", "score", "title", "text"}


def test_cli_reports_bad_input_without_a_traceback():
    r = subprocess.run([sys.executable, "-m", "searchkit", "search", "--corpus", "wiki", "x"],
                       capture_output=True, text=True, timeout=300)  # fmt: skip
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "error: wiki: no such file or folder: check the path ('pydocs' means the built-in corpus, 'beir:DIR' a BEIR folder)"
    )


def test_settings_replace_mode_and_fusion_in_one_place():
    from searchkit.engine import SearchSettings

    tuned = SearchSettings(weights=(0.2, 0.8), rrf_k=10, hybrid_depth=50, nprobe=4)
    hybrid = tuned.with_(mode="hybrid", fusion=None)  # None keeps the fusion
    assert (hybrid.mode, hybrid.fusion, hybrid.weights, hybrid.nprobe) == ("hybrid", "rrf", (0.2, 0.8), 4)
    assert tuned.with_() == tuned and tuned.with_(fusion="zscore").fusion == "zscore"
    plain = SearchSettings(mode="bm25", ef_search=32).with_fusion_of(tuned)
    assert (plain.mode, plain.ef_search, plain.rrf_k, plain.hybrid_depth) == ("bm25", 32, 10, 50)
    lists = [[("a", 3.0), ("b", 2.0), ("c", 1.0)], [("c", 0.9), ("a", 0.8), ("d", 0.1)]]
    assert SearchSettings(hybrid_depth=1).fuse(lists, limit=1) == [("a", 1 / 61)]  # top 1 of each list fused
    for bad, message in [({"weights": (0, 0)}, "weights must be two non-negative"), ({"rrf_k": -1}, "rrf_k must be"),
                         ({"hybrid_depth": 0}, "hybrid_depth must be a positive integer")]:  # fmt: skip
        with pytest.raises(InputError, match=message):
            SearchSettings(**bad)


def test_the_engine_hybrid_fuses_through_its_settings(pydocs_engine):
    from searchkit.engine import SearchSettings

    s = SearchSettings(mode="hybrid", fusion="zscore", weights=(0.3, 0.7), hybrid_depth=40)
    q = "delete a folder and everything inside it"
    bm25 = [(h.id, h.score) for h in pydocs_engine.search(q, 40, mode="bm25")]
    dense = [(h.id, h.score) for h in pydocs_engine.search(q, 40, mode="dense")]
    got = pydocs_engine.search_timed([q], 5, settings=s).hits[0]
    assert [(h.id, h.score) for h in got] == s.fuse([bm25, dense], limit=5)
