"""BM25: real matches, clear errors on bad input, and no noise for queries it cannot match."""

from __future__ import annotations

import pytest

from searchkit.errors import InputError
from searchkit.relevance.lexical import BM25

DOCS = {
    "cat": "The cat sat on the mat",
    "dogs": "Dogs run fast in the park",
    "both": "Cats and dogs living together",
    "empty": "",
    "stop": "the and of",
}


@pytest.fixture(scope="module")
def bm25():
    return BM25(list(DOCS), list(DOCS.values()))


def test_stemming_matches_word_forms(bm25):
    assert [d for d, _ in bm25.search("cats", k=5)] and {d for d, _ in bm25.search("cats", k=5)} == {"cat", "both"}
    plain = BM25(list(DOCS), list(DOCS.values()), stem=False)
    assert [d for d, _ in plain.search("cats", k=5)] == ["both"]


def test_scores_rank_and_k(bm25):
    hits = bm25.search("dogs park", k=5)
    assert hits[0][0] == "dogs" and hits[0][1] > hits[-1][1] > 0
    assert len(bm25.search("dogs park", k=1)) == 1
    assert bm25.scores("dogs").shape == (len(DOCS),)


@pytest.mark.parametrize("query", ["zebra unicorn", "the and of", "!!!", "日本"])
def test_query_without_known_terms_returns_nothing(bm25, query):
    assert bm25.search(query, k=5) == []
    assert not bm25.scores(query).any()


def test_empty_documents_never_match(bm25):
    ids = [d for q in ["cat", "dogs", "zebra"] for d, _ in bm25.search(q, k=10)]
    assert "empty" not in ids and "stop" not in ids


def test_mask_keeps_only_allowed_documents(bm25):
    import numpy as np

    mask = np.array([d != "dogs" for d in DOCS])
    assert [d for d, _ in bm25.search("dogs", k=5, mask=mask)] == ["both"]


@pytest.mark.parametrize("query", ["", "   ", "\n\t", None, 3])
def test_empty_or_non_string_query(bm25, query):
    with pytest.raises(InputError, match="query must be a non-empty string, got"):
        bm25.search(query)


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_bad_k(bm25, k):
    with pytest.raises(InputError, match=f"k must be a positive integer, got {k!r}"):
        bm25.search("cat", k=k)


def test_empty_corpus():
    with pytest.raises(InputError, match="cannot build BM25 over an empty corpus: give at least one document"):
        BM25([], [])


def test_corpus_without_words():
    with pytest.raises(InputError, match="none of the 2 documents contains a searchable word"):
        BM25(["a", "b"], ["", "the of"])


def test_bad_construction_arguments():
    with pytest.raises(InputError, match="got 1 ids for 2 texts: give one id per text"):
        BM25(["a"], ["x", "y"])
    with pytest.raises(InputError, match=r"texts\[1\] is None"):
        BM25(["a", "b"], ["x", None])
    with pytest.raises(InputError, match="BM25 needs k1 >= 0 and 0 <= b <= 1, got k1=1.2, b=2"):
        BM25(["a"], ["x"], k1=1.2, b=2)
    with pytest.raises(InputError, match="unknown BM25 variant 'okapi': choose one of lucene, robertson"):
        BM25(["a"], ["x"], method="okapi")


def test_title_and_text_are_indexed(pydocs):
    bm25 = BM25(pydocs.corpus.ids[:500], pydocs.corpus.full_texts()[:500])
    first = pydocs.corpus.ids[0]
    assert first in [d for d, _ in bm25.search(pydocs.corpus.titles[0], k=10)]
