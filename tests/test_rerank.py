"""Cross-encoder re-ranking, with a tiny randomly initialized model built on the spot (no download)."""

from __future__ import annotations

import pytest

from searchkit.engine import Hit
from searchkit.errors import InputError, ModelNotFoundError

WORDS = "the cat sat on mat dogs run fast park python list sort json file read".split()


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    path = tmp_path_factory.mktemp("tiny-cross-encoder")
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizerFast(vocab_file=str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=5 + len(WORDS), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, num_labels=1,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def reranker(tiny_cross_encoder):
    from searchkit.relevance.rerank import Reranker

    return Reranker(tiny_cross_encoder, max_length=32)


def test_scores_one_per_text(reranker):
    s = reranker.scores("python sort", ["sort a list", "the cat sat", "read json file"])
    assert s.shape == (3,) and s.dtype.name == "float32"
    assert reranker.scores("python", []).shape == (0,)


def test_rerank_orders_by_cross_encoder_score(reranker):
    hits = [Hit(f"d{i}", 1.0 - i / 10, t, "") for i, t in enumerate(["sort a list", "the cat sat", "read json file"])]
    out = reranker.rerank("python sort", hits)
    s = reranker.scores("python sort", [h.title for h in hits])
    assert [h.score for h in out] == sorted(s.tolist(), reverse=True)
    assert {h.id for h in out} == {"d0", "d1", "d2"} and len(reranker.rerank("python sort", hits, k=2)) == 2


def test_reranked_search_keeps_the_tail(reranker):
    from searchkit.relevance.rerank import reranked_search

    class FakeEngine:
        def search_many(self, queries, k, mode):
            return [[Hit(f"d{i}", -i, w, "") for i, w in enumerate(WORDS[:k])] for _ in queries]

    out = reranked_search(FakeEngine(), reranker, mode="dense", depth=3)(["python"], 6)[0]
    assert len(out) == 6 and {d for d, _ in out[:3]} == {"d0", "d1", "d2"}
    assert [d for d, _ in out[3:]] == ["d3", "d4", "d5"]
    assert all(out[i][1] >= out[i + 1][1] for i in range(5))


def test_bad_inputs(reranker, tmp_path):
    from searchkit.relevance.rerank import Reranker

    with pytest.raises(ModelNotFoundError, match=f"no cross-encoder at {tmp_path}: the folder needs config.json"):
        Reranker(tmp_path)
    with pytest.raises(InputError, match="give a cross-encoder as a local folder or a hub name"):
        Reranker("")
    with pytest.raises(InputError, match="query must be a non-empty string"):
        reranker.scores("  ", ["x"])
