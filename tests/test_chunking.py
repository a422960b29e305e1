"""Chunking: passage boundaries, overlap, the window in word pieces, and passages mapped back to documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from searchkit.corpus.chunking import chunk_corpus, chunk_text, plain, split_tokens, tokenizer_of
from searchkit.corpus.datasets import Corpus
from searchkit.errors import DatasetError, InputError


@pytest.fixture(scope="module")
def tok():
    """The default model's own word-piece tokenizer (read from its tokenizer.json, no model weights)."""
    from tokenizers import Tokenizer

    from searchkit.encoders.models import resolve_model

    tok = Tokenizer.from_file(str(Path(resolve_model()[1]) / "tokenizer.json"))
    assert tok.truncation is not None  # the file truncates at 128: chunking must not
    return tok


def _n(tok, text: str) -> int:
    return len(plain(tok).encode(text, add_special_tokens=False).ids)


def _paragraph(i: int, sentences: int = 6) -> str:
    return " ".join(f"Paragraph {i} sentence {j} talks about topic {i * 10 + j} in plain words." for j in range(sentences))


def test_split_tokens_prefers_paragraph_then_sentence_breaks_and_overlaps():
    #            0  1  2  3  4  5  6  7  8  9 10 11
    strength = [2, 0, 0, 0, 0, 0, 2, 0, 1, 0, 0, 0]
    assert split_tokens(strength, 8, overlap=0) == [(0, 6), (6, 12)]  # the paragraph break at 6, not the limit 8
    assert split_tokens(strength, 8, overlap=3) == [(0, 6), (3, 8), (6, 12)]  # overlaps start at breaks
    inside = [2] + [-1] * 9  # one long word: no allowed cut, so cut at the limit
    assert split_tokens(inside, 4, overlap=0) == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(InputError, match="overlap < max_tokens/2"):
        split_tokens(strength, 8, overlap=4)


def test_a_short_text_is_one_passage_unchanged(tok):
    assert chunk_text("A short note.\n\nTwo paragraphs.", tok, 254) == ["A short note.\n\nTwo paragraphs."]


def test_long_text_passages_fit_the_window_overlap_and_end_at_paragraph_breaks(tok):
    paragraphs = [_paragraph(i) for i in range(12)]
    text = "\n\n".join(paragraphs)
    assert _n(tok, text) > 3 * 254
    parts = chunk_text(text, tok, 254, overlap=32)
    assert len(parts) >= 4
    assert all(_n(tok, p) <= 254 for p in parts)
    assert all(p in text for p in parts)  # slices of the document, in order
    starts = [text.index(p) for p in parts]
    assert starts == sorted(starts) and starts[0] == 0 and text.endswith(parts[-1])
    for a, b in zip(parts, parts[1:]):  # each passage repeats the end of the one before, from a sentence start
        shared = a[text.index(b) - text.index(a):]
        assert b.startswith(shared) and 0 < _n(tok, shared) <= 32, (a[-80:], b[:80])
        assert shared.startswith("Paragraph")
    ends = [p.rstrip() for p in parts[:-1]]
    assert all(any(e.endswith(par) for par in paragraphs) for e in ends)  # every cut at a paragraph end


def test_a_paragraph_longer_than_the_window_is_cut_at_sentence_ends(tok):
    text = _paragraph(0, sentences=60)
    parts = chunk_text(text, tok, 128, overlap=16)
    assert len(parts) > 3 and all(_n(tok, p) <= 128 for p in parts)
    assert all(p.endswith("plain words.") for p in parts)


def test_chunk_corpus_names_passages_and_maps_hits_back_to_documents(tok):
    long = "\n\n".join(_paragraph(i) for i in range(8))
    corpus = Corpus(["short", "long"], ["S", "L"], ["A short document.", long], passages=["A short document.", long])
    ps = chunk_corpus(corpus, tokenizer=tok, max_tokens=254)
    n_long = len(ps) - 1
    assert ps.ids == ["short"] + [f"long#{j}" for j in range(1, n_long + 1)] and n_long >= 2
    assert ps.rows == [0] + [1] * n_long and ps.whole == [True] + [False] * n_long
    docs = ps.documents(corpus, ["long#2", "short", "long#1"], [0.9, 0.5, 0.4], k=10)
    assert docs == [("long", 0.9, ps.texts[2]), ("short", 0.5, "A short document.")]  # each document once
    assert ps.documents(corpus, ["long#2", "long#1", "short"], [0.9, 0.8, 0.1], k=1) == [("long", 0.9, ps.texts[2])]
    with pytest.raises(DatasetError, match="passage 'gone#3' is not in this corpus"):
        ps.documents(corpus, ["gone#3"], [1.0], k=1)


def test_passage_ids_that_collide_with_document_ids_are_refused(tok):
    long = "\n\n".join(_paragraph(i) for i in range(8))
    corpus = Corpus(["a", "a#1"], ["", ""], [long, "x"])
    with pytest.raises(DatasetError, match="passage id 'a#1' of document 'a' is also a document id"):
        chunk_corpus(corpus, tokenizer=tok, max_tokens=254)


def test_tokenizer_of_reads_the_model_window(embedder):
    tok, window = tokenizer_of(embedder)
    assert window == 256
    assert tok.truncation is None and tok.padding is None


def test_concatenated_documents_carry_their_judgments_over():
    from searchkit.corpus.datasets import Dataset, concatenate_documents

    ids = [f"d{i}" for i in range(7)]
    corpus = Corpus(ids, [f"T{i}" for i in range(7)], [f"text {i}" for i in range(7)])
    qrels = {"q1": {"d1": 2, "d5": 1}, "q2": {"d3": 0}}
    ds = Dataset("tiny", corpus, {"q1": "one", "q2": "two"}, qrels)
    long = concatenate_documents(ds, per_doc=3, seed=1)
    c = long.corpus
    assert len(c) == 3 and c.chunked and sorted(x for t in c.texts for x in t.split("\n\n")) == sorted(
        f"T{i}\ntext {i}" for i in range(7))
    home = {f"d{i}": c.ids[j] for j, t in enumerate(c.texts) for i in range(7) if f"T{i}\ntext {i}" in t.split("\n\n")}
    want = {}
    for d, g in qrels["q1"].items():
        want[home[d]] = max(g, want.get(home[d], g))
    assert long.qrels["q1"] == want and long.judged_queries() == {"q1": "one"}
    kept = concatenate_documents(ds, per_doc=2, seed=1, keep=3)
    texts = "\n\n".join(kept.corpus.texts)
    assert "T1\ntext 1" in texts and "T5\ntext 5" in texts and len(kept.corpus) == 2  # judged ones always kept
