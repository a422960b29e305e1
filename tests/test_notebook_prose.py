"""The notebooks say what learners run: no stale text, full size, measured minutes, exercises after the lesson."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
import pytest

from tools.course import SOLUTION_TAG, TIMES, notebook_paths, read_times, stated_minutes, write_times

ROOT = Path(__file__).resolve().parent.parent
STALE = [  # phrases that were true once, or never were, for a learner of this course
    "The course ends",
    "Five lessons",
    "This last one",
    "the post this course grew from",
    "quick mode",
    "SEARCHKIT_QUICK",
    "thousands of times larger",
    "the gap widens with N",
    "The curve is steep at first",
    "three bright off-diagonal squares",
    "the default is torch",
    "The subset above is far easier",
]


def _notebooks():
    return [(path, nbformat.read(path, as_version=4)) for path in notebook_paths()]


def _texts(cell) -> list[str]:
    outs = [o.get("text", "") if o.output_type == "stream" else str(o.get("data", {}).get("text/plain", ""))
            for o in cell.get("outputs", [])]  # fmt: skip
    return [cell.source, *outs]


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name[:2])
def test_no_stale_phrases_in_cells_or_saved_outputs(path):
    for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
        for text in _texts(cell):
            for phrase in STALE:
                assert phrase.lower() not in text.lower(), f"{path.name} cell {i}: {phrase!r}"
            assert "quick()" not in text, f"{path.name} cell {i}: notebooks run at full size for everyone"


def test_the_stale_phrase_check_can_fail():
    cell = nbformat.v4.new_code_cell("print(1)")
    cell.outputs = [nbformat.v4.new_output("stream", text="quick mode: True\n")]
    assert any("quick mode" in t.lower() for t in _texts(cell))


def _readme_minutes() -> dict[str, tuple[float, float]]:
    """The README's notebook table: ``{"NN": (first, cached)}`` from its last column."""
    text = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (\d\d) \|.*\| ([\d.]+) / ([\d.]+) \|$", text, flags=re.M)
    return {n: (float(a), float(b)) for n, a, b in rows}


def test_headers_readme_and_the_measured_file_agree():
    measured = read_times()
    readme = _readme_minutes()
    for path, nb in _notebooks():
        n = path.name[:2]
        assert n in measured, f"{path.name} is not in {TIMES.name}: run python tools/course.py time {n}"
        assert stated_minutes(nb) == measured[n], f"{path.name}: header {stated_minutes(nb)}, measured {measured[n]}"
        assert readme.get(n) == measured[n], f"README row {n}: {readme.get(n)}, measured {measured[n]}"
    first, cached = (round(sum(m[i] for m in measured.values()), 1) for i in (0, 1))
    text = " ".join((ROOT / "README.md").read_text().split())
    assert f"({first} minutes for the whole course the first time, {cached} once cached)" in text, (first, cached)


def test_write_times_keeps_other_notebooks_and_rounds(tmp_path):
    path = tmp_path / "times.json"
    write_times(path, {"01": (1.04, 0.26), "02": (2.0, 1.0)}, "test")
    write_times(path, {"02": (3.333, 2.25)}, "again")
    assert read_times(path) == {"01": (1.0, 0.3), "02": (3.3, 2.2)}


def _defined(source: str) -> set[str]:
    """Names a cell binds at its top level: assignments, loop targets, functions, classes, imports."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def _code(source: str) -> str:
    return "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name[:2])
def test_checks_read_only_what_their_exercise_defines(path):
    """A check cell's arguments are defined by the solution above it and by no lesson cell (an empty answer is a NameError)."""
    cells = nbformat.read(path, as_version=4).cells
    lesson = set().union(*(_defined(_code(c.source)) for c in cells
                           if c.cell_type == "code" and SOLUTION_TAG not in c.metadata.get("tags", [])))  # fmt: skip
    for i, cell in enumerate(cells):
        if SOLUTION_TAG not in cell.metadata.get("tags", []):
            continue
        check = cells[i + 1].source
        calls = [n for n in ast.walk(ast.parse(check)) if isinstance(n, ast.Call) and getattr(n.func, "id", "").startswith("check_")]
        read = {a.id for call in calls for a in call.args if isinstance(a, ast.Name)}
        assert read, f"{path.name} cell {i + 1}: no check_...(name) call"
        assert read <= _defined(cell.source), f"{path.name} cell {i + 1} reads {read - _defined(cell.source)}"
        assert not read & lesson, f"{path.name}: {read & lesson} is also a lesson variable: the check would grade it"


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name[:2])
def test_exercises_come_after_the_lesson(path):
    """Run All of a learner copy stops at the first empty answer: every lesson cell must come before it."""
    cells = nbformat.read(path, as_version=4).cells
    first = next(i for i, c in enumerate(cells) if SOLUTION_TAG in c.metadata.get("tags", []))
    after = [i for i, c in enumerate(cells[first:], first) if c.cell_type == "code"
             and SOLUTION_TAG not in c.metadata.get("tags", []) and "check_" not in c.source]  # fmt: skip
    assert not after, f"{path.name}: lesson cells {after} come after the first exercise (cell {first})"


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name[:2])
def test_under_a_quarter_of_code_cells_ignore_their_output(path):
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    ignored = [c for c in code if "# NBVAL_IGNORE_OUTPUT" in c.source]
    assert len(ignored) < 0.25 * len(code), f"{path.name}: {len(ignored)} of {len(code)} code cells ignore their output"
