"""Course tooling (tools/course.py): learner copies that keep the learner's work, offline slide decks."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest

from tools.course import (
    SOLUTION_STUB,
    learner_copy,
    notebook_paths,
    relink,
    render_slides,
    solution_stub,
    stated_minutes,
    tag_slides,
    time_notebooks,
    write_exercises,
)


def test_every_notebook_has_goals_summary_and_checked_exercises():
    for path in notebook_paths():
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert "learn" in text.lower() and "Time to run" in text and "## Summary" in text, path.name
        solutions = [i for i, c in enumerate(nb.cells) if "solution" in c.metadata.get("tags", [])]
        assert len(solutions) >= 2, f"{path.name} needs at least two exercises with solution cells"
        for i in solutions:
            assert "check_" in nb.cells[i + 1].source, f"{path.name}: cell {i + 1} should check the solution above it"


def test_nbval_markers_stand_alone_on_their_line():
    """nbval honours `# NBVAL_IGNORE_OUTPUT` only as the whole comment: trailing words silently turn it off."""
    from nbval.plugin import comment_markers

    for path in notebook_paths():
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            for line in cell.source.splitlines() if cell.cell_type == "code" else []:
                if line.strip().startswith("#") and "NBVAL" in line:
                    assert line.strip().lstrip("#").strip() in comment_markers, f"{path.name} cell {i}: {line.strip()!r}"


def test_stated_run_times_fit_the_course_budget():
    """Headers state measured minutes (python tools/course.py time): 01-05 within 10 once cached, all within 15."""
    minutes = {p.name[:2]: stated_minutes(nbformat.read(p, as_version=4)) for p in notebook_paths()}
    assert all(cached <= first for first, cached in minutes.values()), minutes
    assert sum(minutes[n][1] for n in ("01", "02", "03", "04", "05")) <= 10, minutes
    assert sum(cached for _, cached in minutes.values()) <= 15, minutes


def test_stated_minutes_read_the_header_and_refuse_a_missing_one():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("**Time to run:** 3.5 min the first time, 2 once cached")])
    assert stated_minutes(nb) == (3.5, 2.0)
    with pytest.raises(Exception, match="Time to run"):
        stated_minutes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# no time here")]))


def test_timing_runs_a_notebook_on_the_given_cache_and_restores_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCHKIT_QUICK", "1")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("**Time to run:** 0.5 min the first time, 0.2 once cached"),
        nbformat.v4.new_code_cell("import os, pathlib\n"
                                  "assert 'SEARCHKIT_QUICK' not in os.environ  # full size\n"
                                  "pathlib.Path(os.environ['SEARCHKIT_CACHE'], 'vectors').write_bytes(bytes(2_000_000))"),
    ])  # fmt: skip
    nbformat.write(nb, tmp_path / "01_demo.ipynb")
    cache = tmp_path / "cache"
    cache.mkdir()
    [row] = time_notebooks([tmp_path / "01_demo.ipynb"], cache)
    assert row["notebook"] == "01_demo.ipynb" and row["cache_grew_mb"] == 2.0 and row["minutes"] > 0
    assert (row["stated_first"], row["stated_cached"]) == (0.5, 0.2)  # filled the cache: compared with the first run
    assert os.environ["SEARCHKIT_QUICK"] == "1" and os.environ.get("SEARCHKIT_CACHE") != str(cache)


def test_learner_copies_empty_solutions_and_outputs(tmp_path):
    made, kept = write_exercises(tmp_path)
    assert [p.name for p in made] == [p.name for p in notebook_paths()] and kept == []
    for path in made:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None
                if "solution" in cell.metadata.get("tags", []):
                    assert cell.source.startswith("# Your solution here: define ") and cell.source.count("\n") == 1, cell.source


def test_learner_copy_runs_up_to_the_first_exercise(tmp_path):
    """Notebook 01's learner copy runs up to its first exercise (all of them: SEARCHKIT_FULL_COURSE=1).

    nbval runs every notebook in full; this checks the copy a learner gets, on the shortest notebook.
    """
    import os

    paths = notebook_paths() if os.environ.get("SEARCHKIT_FULL_COURSE") else [notebook_paths()[0]]
    for path in paths:
        _run_until_first_exercise(path, tmp_path)


def _run_until_first_exercise(path, tmp_path):
    from nbclient import NotebookClient

    nb = learner_copy(nbformat.read(path, as_version=4))
    first = next(i for i, c in enumerate(nb.cells) if "solution" in c.metadata.get("tags", []))
    nb.cells = nb.cells[:first]
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name}: {errors[:1]}"


def test_slides_render_for_every_notebook_and_load_reveal_from_beside_them(tmp_path):
    for path in notebook_paths():
        nb = nbformat.read(path, as_version=4)
        assert tag_slides(nb) == 0, f"{path.name} has cells without a slide type: run make slides-tag"
    made = render_slides(tmp_path)
    assert len(made) == len(notebook_paths())
    for path in made:
        html = path.read_text()
        assert "<section" in html
        loaded = set(re.findall(r"vendor/[\w./-]+", html))
        assert {"vendor/require.js", "vendor/jquery/jquery.min.js", "vendor/reveal.js/dist/reveal.js"} <= loaded
        for name in loaded:
            assert (tmp_path / name).is_file(), f"{path.name} loads {name}, which render_slides did not copy"
        web = re.findall(r"(?:src=|href=|\[\s*|,\s*)\"(https://\S*(?:reveal|require|jquery)\S*)\"", html)
        assert not web, f"{path.name} still loads {web} from the web"


def test_a_solution_stub_names_what_the_check_reads():
    assert solution_stub("import numpy as np\n\ndef my_dcg(grades):\n    return 0") == (
        "# Your solution here: define my_dcg(grades), then run the check cell below.\n"
    )
    assert solution_stub("my_nlist = 8192") == "# Your solution here: define my_nlist, then run the check cell below.\n"
    assert solution_stub("class LRU:\n    pass") == "# Your solution here: define LRU, then run the check cell below.\n"
    assert solution_stub("print(1)") == solution_stub("not python (") == SOLUTION_STUB


def test_learner_copies_never_overwrite_the_learners_work(tmp_path):
    write_exercises(tmp_path)
    mine = tmp_path / notebook_paths()[0].name
    nb = nbformat.read(mine, as_version=4)
    nb.cells[0].source = "my notes"
    nbformat.write(nb, mine)
    (tmp_path / notebook_paths()[1].name).unlink()
    written, kept = write_exercises(tmp_path)
    assert [p.name for p in written] == [notebook_paths()[1].name] and mine in kept
    assert nbformat.read(mine, as_version=4).cells[0].source == "my notes"


def test_links_in_a_copy_point_to_the_same_files(tmp_path):
    (tmp_path / "course" / "docs").mkdir(parents=True)
    (tmp_path / "course" / "docs" / "page.png").write_bytes(b"png")
    src, dest = tmp_path / "course" / "notebooks", tmp_path / "course" / "build" / "exercises"
    text = 'See ![the page](../docs/page.png), <img src="../docs/page.png"> and [the docs](https://x.org/a.png).'
    out = relink(text, src, dest)
    assert out == (
        'See ![the page](../../docs/page.png), <img src="../../docs/page.png"> and [the docs](https://x.org/a.png).'
    )
    assert (dest / "../../docs/page.png").resolve() == (tmp_path / "course" / "docs" / "page.png").resolve()
    assert relink(text, src, tmp_path / "course" / "exercises") == text  # make lab's folder: a sibling of notebooks/


def test_make_lab_opens_learner_copies_and_allows_root_only_for_root():
    import os
    import subprocess

    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(["make", "-n", "lab"], cwd=root, capture_output=True, text=True)
    lines = [line for line in out.stdout.splitlines() if "jupyter lab" in line or "course.py" in line]
    assert any("tools/course.py exercises exercises" in line for line in lines), out.stdout
    lab = next(line for line in lines if "jupyter lab" in line)
    assert lab.endswith(" exercises/") and (("--allow-root" in lab) == (os.geteuid() == 0)), lab




def test_time_runs_on_an_empty_cache_then_cached_and_records_both(tmp_path, capsys):
    from tools.course import read_times, time_command

    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("**Time to run:** 0.5 min the first time, 0.2 once cached"),
        nbformat.v4.new_code_cell("import os, pathlib\nruns = pathlib.Path(os.environ['SEARCHKIT_CACHE'], 'runs')\n"
                                  "runs.write_text(str(int(runs.read_text()) + 1) if runs.exists() else '1')"),
    ])  # fmt: skip
    nbformat.write(nb, tmp_path / "07_demo.ipynb")
    out = tmp_path / "times.json"
    assert time_command([tmp_path / "07_demo.ipynb"], out=out) == 0
    [(number, (first, cached))] = read_times(out).items()
    assert number == "07" and first >= 0 and cached >= 0
    printed = capsys.readouterr().out
    assert "every notebook on it, then all of them again" in printed and f"wrote {out}" in printed
    cache = Path(re.search(r"cache: (\S+) \(empty\)", printed)[1])
    assert (cache / "runs").read_text() == "2"  # a new cache: the first pass started empty, the second found its files
