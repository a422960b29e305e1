"""Notebook 09's exercise checks accept right answers and explain wrong ones."""

from __future__ import annotations

import numpy as np
import pytest

from searchkit.course.exercises_09 import check_cloze, check_safe_negative, check_truncation
from searchkit.errors import ExerciseError


def right_shorten(x, d):
    y = x[:, :d]
    return y / np.linalg.norm(y, axis=1, keepdims=True)


def test_truncation(capsys):
    check_truncation(right_shorten)
    assert capsys.readouterr().out.startswith("Correct:")
    with pytest.raises(ExerciseError, match="not unit length"):
        check_truncation(lambda x, d: x[:, :d])
    with pytest.raises(ExerciseError, match="kept the last dimensions"):
        check_truncation(lambda x, d: right_shorten(x[:, x.shape[1] - d :], d))
    with pytest.raises(ExerciseError, match="expected shape|returned shape"):
        check_truncation(lambda x, d: right_shorten(x, d)[:3])


def right_safe(positive, candidate, margin):
    return candidate <= (1 - margin) * positive


def test_safe_negative(capsys):
    check_safe_negative(right_safe)
    assert capsys.readouterr().out.startswith("Correct:")
    with pytest.raises(ExerciseError, match="it is relative"):
        check_safe_negative(lambda p, c, m: c <= p - m)
    with pytest.raises(ExerciseError, match="scores above the positive"):
        check_safe_negative(lambda p, c, m: c <= (1 - m) * p or c > p)
    with pytest.raises(ExerciseError, match="return True or False"):
        check_safe_negative(lambda p, c, m: (1 - m) * p - c)


def right_cloze(sentences, i):
    return sentences[i], " ".join(s for j, s in enumerate(sentences) if j != i)


def test_cloze(capsys):
    check_cloze(right_cloze)
    assert capsys.readouterr().out.startswith("Correct:")
    with pytest.raises(ExerciseError, match="still holds the query sentence"):
        check_cloze(lambda s, i: (s[i], " ".join(s)))
    with pytest.raises(ExerciseError, match="the query is sentence"):
        check_cloze(lambda s, i: (s[0], " ".join(x for j, x in enumerate(s) if j != i)))
    with pytest.raises(ExerciseError, match="single spaces"):
        check_cloze(lambda s, i: (s[i], "\n".join(x for j, x in enumerate(s) if j != i)))
    with pytest.raises(ExerciseError, match="return a pair"):
        check_cloze(lambda s, i: s[i])
