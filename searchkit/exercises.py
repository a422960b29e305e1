"""Checks for the notebooks' exercises: each says what is wrong, not just "failed"."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .errors import SearchkitError


class ExerciseError(SearchkitError, AssertionError):
    """An exercise answer is not right yet; the message says why."""


def _ok(message: str) -> None:
    print(f"Correct: {message}")


# -- 01 embeddings ----------------------------------------------------------------------------


def check_paraphrase(query: str, document: str, min_cosine: float = 0.5) -> None:
    """Check that ``document`` shares no scored word with ``query`` (BM25 = 0) yet has cosine >= ``min_cosine``."""
    from .embed import default_embedder
    from .lexical import BM25

    for name, value in (("query", query), ("document", document)):
        if not isinstance(value, str) or not value.strip():
            raise ExerciseError(f"{name} is {value!r}: write a sentence in the string")
    bm25 = float(BM25(["doc", "other"], [document, "an unrelated filler sentence"]).scores(query)[0])
    if bm25 > 0:
        raise ExerciseError(
            f"BM25 scores your document {bm25:.2f}: it shares a word with the query after stemming. "
            "Replace the shared words with synonyms."
        )
    q, d = default_embedder().encode([query, document])
    cos = float(q @ d)
    if cos < min_cosine:
        raise ExerciseError(
            f"cosine similarity is {cos:.2f}, below {min_cosine}: the embedding does not see them as the same "
            "meaning yet. Keep the meaning closer to the query."
        )
    _ok(f"BM25 gives 0 but the cosine similarity is {cos:.2f}.")


def check_normalize(normalize: Callable[[np.ndarray], np.ndarray]) -> None:
    """Check a learner's ``normalize(x)`` that scales every row of ``x`` to unit length."""
    x = np.random.default_rng(7).normal(size=(5, 8)).astype(np.float32) * 3
    got = np.asarray(normalize(x.copy()))
    if got.shape != x.shape:
        raise ExerciseError(f"normalize returned shape {got.shape}, expected {x.shape}: normalize each row, keep the shape")
    norms = np.linalg.norm(got, axis=1)
    if not np.allclose(norms, 1.0, atol=1e-4):
        raise ExerciseError(
            f"row lengths are {np.round(norms, 3).tolist()}, not 1: divide each row by its own length "
            "(np.linalg.norm(x, axis=1, keepdims=True))"
        )
    if not np.allclose(got, x / np.linalg.norm(x, axis=1, keepdims=True), atol=1e-4):
        raise ExerciseError("rows have length 1 but point in other directions: scale each row, do not change it otherwise")
    _ok("every row has length 1 and keeps its direction.")
