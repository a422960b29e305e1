"""Course tooling: learner copies of the notebooks (solutions emptied) and slide decks."""

from __future__ import annotations

from pathlib import Path

from .errors import InputError
from .paths import ROOT

NOTEBOOKS = ROOT / "notebooks"
SOLUTION_TAG = "solution"
SOLUTION_STUB = "# Your solution here: write it, then run the check cell below.\n"


def notebook_paths(folder: str | Path = NOTEBOOKS) -> list[Path]:
    """Return the numbered course notebooks in ``folder``, in order."""
    paths = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise InputError(f"no numbered notebooks (NN_name.ipynb) in {folder}: point to the course's notebooks/ folder")
    return paths


def learner_copy(nb):
    """Return a copy of notebook ``nb`` with solution cells emptied and every output cleared."""
    import copy

    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            cell.source = SOLUTION_STUB
        cell.outputs = []
        cell.execution_count = None
    return nb


def write_exercises(dest: str | Path, src: str | Path = NOTEBOOKS) -> list[Path]:
    """Write learner copies of every course notebook into ``dest``; return their paths."""
    import nbformat

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for path in notebook_paths(src):
        target = dest / path.name
        nbformat.write(learner_copy(nbformat.read(path, as_version=4)), target)
        out.append(target)
    return out


def render_slides(dest: str | Path, src: str | Path = NOTEBOOKS) -> list[Path]:
    """Render every course notebook as a reveal.js slide deck (HTML) into ``dest``; return the files."""
    import nbformat
    from nbconvert import SlidesExporter

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    exporter = SlidesExporter()
    exporter.reveal_scroll = True
    out = []
    for path in notebook_paths(src):
        nb = nbformat.read(path, as_version=4)
        missing = [i for i, c in enumerate(nb.cells) if "slide_type" not in c.get("metadata", {}).get("slideshow", {})]
        if missing:
            raise InputError(f"{path.name}: cells {missing[:5]} have no slide type: run searchkit.course.tag_slides")
        body, _ = exporter.from_notebook_node(nb)
        target = dest / f"{path.stem}.slides.html"
        target.write_text(body, encoding="utf-8")
        out.append(target)
    return out


def tag_slides(nb) -> int:
    """Give every cell of ``nb`` a slide type: a new slide at each ``##`` heading, fragments otherwise.

    Returns how many cells were tagged. Cells that already have a slide type keep it.
    """
    n = 0
    for i, cell in enumerate(nb.cells):
        show = cell.setdefault("metadata", {}).setdefault("slideshow", {})
        if "slide_type" in show:
            continue
        heading = cell.cell_type == "markdown" and cell.source.lstrip().startswith(("# ", "## "))
        show["slide_type"] = "slide" if (i == 0 or heading) else "-"
        n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    """``python -m searchkit.course exercises|slides|tag DEST``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m searchkit.course")
    p.add_argument("action", choices=["exercises", "slides", "tag"])
    p.add_argument("dest", nargs="?", default=None, help="output folder (default: build/exercises or build/slides)")
    args = p.parse_args(argv)
    if args.action == "tag":
        import nbformat

        for path in notebook_paths():
            nb = nbformat.read(path, as_version=4)
            if tag_slides(nb):
                nbformat.write(nb, path)
        return 0
    dest = Path(args.dest or ROOT / "build" / args.action)
    made = write_exercises(dest) if args.action == "exercises" else render_slides(dest)
    for path in made:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
