"""Checks for notebook 09's exercises (fine-tuning): each says what is wrong, not just "failed"."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from searchkit.errors import ExerciseError


def _ok(message: str) -> None:
    print(f"Correct: {message}")


def check_truncation(shorten: Callable[[np.ndarray, int], np.ndarray]) -> None:
    """Check ``shorten(x, d)``: the first ``d`` dimensions of each row of ``x``, scaled back to unit length."""
    __tracebackhide__ = True  # IPython and pytest leave this frame out of tracebacks
    x = np.random.default_rng(9).normal(size=(6, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    for d in (16, 8, 32):
        want = x[:, :d] / np.linalg.norm(x[:, :d], axis=1, keepdims=True)
        got = np.asarray(shorten(x.copy(), d), dtype=np.float32)
        if got.shape != want.shape:
            raise ExerciseError(f"shorten(x, {d}) returned shape {got.shape}, expected {want.shape}: "
                                f"keep every row and its first {d} columns, x[:, :d]")  # fmt: skip
        if np.allclose(got, x[:, :d], atol=1e-5) and d < x.shape[1]:
            raise ExerciseError(f"the first {d} dimensions are right but their rows are not unit length any more "
                                "(norms below 1): divide each row by its norm so inner product is cosine again")  # fmt: skip
        last = x[:, -d:] / np.linalg.norm(x[:, -d:], axis=1, keepdims=True)
        if d < x.shape[1] and np.allclose(got, last, atol=1e-5):
            raise ExerciseError("you kept the last dimensions: Matryoshka training packs the most into the first ones, "
                                "keep x[:, :d]")  # fmt: skip
        if not np.allclose(got, want, atol=1e-5):
            raise ExerciseError(f"shorten(x, {d}) differs from x[:, :{d}] scaled to unit length per row: "
                                "cut first, then normalize (normalizing the whole row first does not give norm 1)")  # fmt: skip
    _ok("the first d dimensions, each row back at unit length: inner product is cosine again.")


def check_safe_negative(safe_negative: Callable[[float, float, float], bool]) -> None:
    """Check ``safe_negative(positive, candidate, margin)``: a candidate may be a negative when it scores at most
    ``(1 - margin)`` times the positive (the relative margin of ``mine_hard_negatives``)."""
    __tracebackhide__ = True
    cases = [((0.80, 0.50, 0.05), True), ((0.80, 0.79, 0.05), False), ((0.80, 0.76, 0.05), True),
             ((0.80, 0.77, 0.05), False), ((0.40, 0.39, 0.05), False), ((0.40, 0.37, 0.05), True),
             ((0.60, 0.70, 0.05), False), ((0.50, 0.45, 0.2), False), ((0.50, 0.39, 0.2), True)]  # fmt: skip
    for (pos, cand, margin), want in cases:
        got = safe_negative(pos, cand, margin)
        if not isinstance(got, (bool, np.bool_)):
            raise ExerciseError(f"safe_negative({pos}, {cand}, {margin}) returned {got!r}: return True or False")
        if bool(got) == want:
            continue
        if want is False and cand > pos:
            raise ExerciseError(f"safe_negative({pos}, {cand}, {margin}) is True, but the candidate scores above the "
                                "positive: it is most likely relevant too (a false negative), never push it away")  # fmt: skip
        absolute = cand <= pos - margin
        hint = (" (you subtracted the margin: it is relative, a fraction of the positive's score)"
                if bool(got) == absolute else "")  # fmt: skip
        raise ExerciseError(f"safe_negative({pos}, {cand}, {margin}) returned {bool(got)}, expected {want}: keep a "
                            f"candidate only if it scores at most (1 - margin) x the positive, here "
                            f"{(1 - margin) * pos:.3f}{hint}")  # fmt: skip
    _ok("only candidates clearly below the positive become negatives; near-ties, likely unjudged answers, are kept out.")


def check_cloze(cloze: Callable[[list[str], int], tuple[str, str]]) -> None:
    """Check ``cloze(sentences, i)``: the inverse-cloze pair ``(sentences[i], the other sentences joined by spaces)``."""
    __tracebackhide__ = True
    sents = ["Feed the starter twice a day.", "Use equal weights of flour and water.",
             "A smell of acetone means it is hungry.", "Bake when it doubles in four hours."]  # fmt: skip
    for i in (2, 0, 3):
        got = cloze(list(sents), i)
        if not isinstance(got, tuple) or len(got) != 2:
            raise ExerciseError(f"cloze(sentences, {i}) returned {got!r}: return a pair (query, positive)")
        query, positive = got
        rest = " ".join(s for j, s in enumerate(sents) if j != i)
        if query != sents[i]:
            raise ExerciseError(f"cloze(sentences, {i}) gave the query {query!r}: the query is sentence {i} itself, "
                                f"{sents[i]!r}")  # fmt: skip
        if sents[i] in str(positive):
            raise ExerciseError(f"the positive still holds the query sentence {sents[i]!r}: the model would learn to "
                                "find copies of the words, not passages about the same thing; leave it out")  # fmt: skip
        if positive != rest:
            raise ExerciseError(f"cloze(sentences, {i}) gave the positive {positive!r}, expected {rest!r}: the other "
                                "sentences in their order, joined by single spaces")  # fmt: skip
    _ok("one sentence asks, the rest of its passage answers: training pairs with no labels at all.")
