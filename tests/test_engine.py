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
