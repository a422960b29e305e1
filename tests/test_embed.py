"""Embedding: shapes, dtype, normalization, bad input, and the on-disk cache."""

from __future__ import annotations

import numpy as np
import pytest

from searchkit.encoders.embed import embedding_cache_path
from searchkit.errors import InputError


def test_encode_gives_contiguous_unit_float32(embedder):
    x = embedder.encode(["affordable laptops for students", "budget-friendly notebooks for college", ""])
    assert x.shape == (3, 384) and x.dtype == np.float32 and x.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert float(x[0] @ x[1]) > 0.5  # the paraphrase is close


def test_empty_list_gives_zero_rows(embedder):
    assert embedder.encode([]).shape == (0, 384)


def test_batching_does_not_change_results(embedder):
    texts = [f"sentence number {i} about files" for i in range(10)]
    np.testing.assert_allclose(embedder.encode(texts, batch_size=3), embedder.encode(texts, batch_size=64), atol=1e-5)


@pytest.mark.parametrize(
    "texts, message",
    [
        (["ok", None], r"texts\[1\] is None \(NoneType\), not a string"),
        (["ok", "fine", 3], r"texts\[2\] is 3 \(int\), not a string"),
        ("just one string", r"got a single str: wrap it as \[text\]"),
    ],
)
def test_bad_items_are_named(embedder, texts, message):
    with pytest.raises(InputError, match=message):
        embedder.encode(texts)


def test_bad_batch_size(embedder):
    with pytest.raises(InputError, match="batch_size must be a positive integer, got 0"):
        embedder.encode(["x"], batch_size=0)


def test_cache_is_reused(embedder, tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCHKIT_CACHE", str(tmp_path))
    texts = ["first text", "second text"]
    first = embedder.encode_cached(texts)
    path = embedding_cache_path(embedder.model_id, texts)
    assert path.is_file() and str(path).startswith(str(tmp_path))
    np.save(path, first * 0 + 0.5)  # prove the second call reads the file, not the model
    assert np.all(embedder.encode_cached(texts) == 0.5)
    assert embedding_cache_path("another/model", texts) != path
    assert embedding_cache_path(embedder.model_id, texts[::-1]) != path


LONG = [
    " ".join(f"word{i % 97} shutil.rmtree naïve café 删除目录 🎉" for i in range(60))[:2000],
    "antidisestablishmentarianism " * 70,
    "x " * 1000,
]


def test_truncate_cuts_to_what_the_model_reads(embedder):
    cut, pieces = embedder.truncate([*LONG, "read a file", ""])
    assert embedder.max_pieces == 256
    assert pieces == [256, 256, 256, 5, 2]  # [CLS] read a file [SEP]; an empty text is [CLS] [SEP]
    assert all(len(c) < len(t) for c, t in zip(cut, LONG)) and cut[3:] == ["read a file", ""]
    assert embedder.truncate(cut)[1] == pieces  # a cut text is still exactly 256 pieces: cut at a piece boundary


def test_a_cut_text_embeds_like_the_whole_text(embedder):
    cut, _ = embedder.truncate(LONG)
    np.testing.assert_allclose(embedder.encode(cut), embedder.encode(LONG), atol=1e-6)
