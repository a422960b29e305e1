"""Notebook 08's exercise checks accept right answers and explain wrong ones."""

from __future__ import annotations

import pytest

from searchkit.course.exercises import check_best_per_document, check_cheapest
from searchkit.errors import ExerciseError


def right_documents(pids, scores, doc_of, k):
    out, seen = [], set()
    for p, s in zip(pids, scores):
        if doc_of[p] not in seen:
            seen.add(doc_of[p])
            out.append((doc_of[p], s))
    return out[:k]


def test_best_per_document(capsys):
    check_best_per_document(right_documents)
    assert capsys.readouterr().out.startswith("Correct:")
    with pytest.raises(ExerciseError, match="names a document twice"):
        check_best_per_document(lambda p, s, d, k: [(d[x], y) for x, y in zip(p, s)][:k])
    with pytest.raises(ExerciseError, match="keep the first \\(best\\) score"):  # keeps the last, not the best
        check_best_per_document(lambda p, s, d, k: list({d[x]: y for x, y in zip(p, s)}.items())[:k])


def right_pick(rows, memory, recall):
    ok = [r for r in rows if r["memory"] <= memory and r["recall"] >= recall]
    return min(ok, key=lambda r: r["memory"])["factory"] if ok else None


def test_cheapest(capsys):
    check_cheapest(right_pick)
    assert capsys.readouterr().out.startswith("Correct:")
    with pytest.raises(ExerciseError, match="nothing meets both targets: return None"):
        check_cheapest(lambda rows, m, r: right_pick(rows, m, r) or "Flat")
    with pytest.raises(ExerciseError, match="expected 'SQ8'"):  # ignores the recall target
        check_cheapest(lambda rows, m, r: min((x for x in rows if x["memory"] <= m), key=lambda x: x["memory"])["factory"])
