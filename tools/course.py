"""Course tooling: learner copies of the notebooks (solutions emptied) and offline slide decks.

``python tools/course.py exercises [DEST]`` writes the learner copies that ``make lab`` opens (default
``exercises/``), keeping every copy that already exists; ``slides [DEST]`` renders reveal.js decks (default
``build/slides/``) with reveal.js copied beside them; ``tag`` gives new cells a slide type; ``time [NN ...]``
runs the notebooks at full size, in order, on a new empty cache and then again cached, prints their minutes beside
what each header states and records them in ``docs/notebook-times.json`` (``--cache DIR``: one pass on that cache,
printed only). The headers and the README's notebook table quote that file (``tests/test_notebook_prose.py``).
"""

from __future__ import annotations

import ast
import copy
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout: import this checkout's searchkit
    sys.path.insert(0, str(ROOT))

from searchkit.errors import InputError  # noqa: E402

NOTEBOOKS = ROOT / "notebooks"
TIMES = ROOT / "docs" / "notebook-times.json"  # what python tools/course.py time measured
VENDOR = Path(__file__).resolve().parent / "vendor"
SOLUTION_TAG = "solution"
SOLUTION_STUB = "# Your solution here: write it, then run the check cell below.\n"
# a relative target in a Markdown link or image, ](docs/x.png), or an HTML attribute, src="docs/x.png"
_LINK = re.compile(r"(\]\(|(?:src|href)=[\"'])(?![a-z][a-z0-9+.-]*:|/|#)([^)\"'\s]+)", re.IGNORECASE)


def notebook_paths(folder: str | Path = NOTEBOOKS) -> list[Path]:
    """Return the numbered course notebooks in ``folder``, in order."""
    paths = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not paths:
        raise InputError(f"no numbered notebooks (NN_name.ipynb) in {folder}: point to the course's notebooks/ folder")
    return paths


def relink(markdown: str, src: Path, dest: Path) -> str:
    """Rewrite the relative links of ``markdown`` (written in folder ``src``) so they work from folder ``dest``."""

    def move(m: re.Match) -> str:
        target = os.path.relpath(Path(src).resolve() / m.group(2), Path(dest).resolve())
        return m.group(1) + Path(target).as_posix()

    return markdown if Path(src).resolve() == Path(dest).resolve() else _LINK.sub(move, markdown)


def moved(nb, src: Path, dest: Path):
    """Return a copy of notebook ``nb`` (from folder ``src``) whose Markdown links work from folder ``dest``."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = relink(cell.source, src, dest)
    return nb


def solution_stub(solution: str) -> str:
    """Return what a learner copy puts in place of ``solution``: a comment naming what the check cell reads."""
    try:
        body = ast.parse(solution).body
    except SyntaxError:
        return SOLUTION_STUB
    names = [f"{n.name}({', '.join(a.arg for a in n.args.args)})" if isinstance(n, ast.FunctionDef) else n.name
             for n in body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]  # fmt: skip
    names += [t.id for n in body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)]
    if not names:
        return SOLUTION_STUB
    return f"# Your solution here: define {' and '.join(names)}, then run the check cell below.\n"


def learner_copy(nb, src: Path = NOTEBOOKS, dest: Path = NOTEBOOKS):
    """Return a copy of notebook ``nb`` with solution cells emptied, outputs cleared and links fixed for ``dest``."""
    nb = moved(nb, src, dest)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if SOLUTION_TAG in cell.get("metadata", {}).get("tags", []):
            cell.source = solution_stub(cell.source)
        cell.outputs = []
        cell.execution_count = None
    return nb


def write_exercises(dest: str | Path, src: str | Path = NOTEBOOKS) -> tuple[list[Path], list[Path]]:
    """Write learner copies of the course notebooks into ``dest``; return (written, kept).

    A copy that already exists in ``dest`` is the learner's work: it is kept, never overwritten.
    """
    import nbformat

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    written, kept = [], []
    for path in notebook_paths(src):
        target = dest / path.name
        if target.exists():
            kept.append(target)
            continue
        nb = learner_copy(nbformat.read(path, as_version=4), path.parent, dest)
        tmp = target.with_name(f".{target.name}.tmp")
        nbformat.write(nb, tmp)
        tmp.replace(target)  # atomic: an interrupted run leaves no half-written copy to be kept later
        written.append(target)
    return written, kept


def render_slides(dest: str | Path, src: str | Path = NOTEBOOKS) -> list[Path]:
    """Render every course notebook as a reveal.js slide deck (HTML) into ``dest``; return the files.

    reveal.js, require.js and jQuery are copied to ``dest/vendor`` and loaded from there, so decks open offline.
    """
    import nbformat
    from nbconvert import SlidesExporter

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copytree(VENDOR, dest / "vendor", dirs_exist_ok=True)
    exporter = SlidesExporter(
        reveal_url_prefix="vendor/reveal.js", require_js_url="vendor/require.js", jquery_url="vendor/jquery/jquery.min.js"
    )
    exporter.reveal_scroll = True
    out = []
    for path in notebook_paths(src):
        nb = nbformat.read(path, as_version=4)
        missing = [i for i, c in enumerate(nb.cells) if "slide_type" not in c.get("metadata", {}).get("slideshow", {})]
        if missing:
            raise InputError(f"{path.name}: cells {missing[:5]} have no slide type: run make slides-tag")
        body, _ = exporter.from_notebook_node(moved(nb, path.parent, dest))
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


# "**Time to run:** 6 min the first time, 3 once cached" in each notebook's header
_TIME = re.compile(r"\*\*Time to run:?\*\*:?\s*(?:about\s+)?([\d.]+) min(?:utes)? the first time, ([\d.]+) once cached")


def stated_minutes(nb) -> tuple[float, float]:
    """Return the (first run, cached) minutes that a notebook's header states."""
    for cell in nb.cells[:3]:
        m = _TIME.search(cell.source) if cell.cell_type == "markdown" else None
        if m:
            return float(m[1]), float(m[2])
    raise InputError("no '**Time to run:** N min the first time, M once cached' line in the notebook's first cells: add one")


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file()) if folder.is_dir() else 0


def time_notebooks(paths: list[Path], cache: Path) -> list[dict]:
    """Execute ``paths`` in order, at full size, with ``SEARCHKIT_CACHE=cache``; return minutes, cache growth, stated minutes."""
    saved = {k: os.environ.get(k) for k in ("SEARCHKIT_CACHE", "SEARCHKIT_QUICK")}
    os.environ["SEARCHKIT_CACHE"] = str(cache)  # the kernels inherit it
    os.environ.pop("SEARCHKIT_QUICK", None)
    try:
        return [_time_one(path, cache) for path in paths]
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _time_one(path: Path, cache: Path) -> dict:
    """Execute one notebook; compare its minutes with what its header states (first run if it filled the cache)."""
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    try:
        first, cached = stated_minutes(nb)
    except InputError:  # a header without the line: measure anyway
        first = cached = float("nan")
    before = _folder_bytes(cache)
    start = time.perf_counter()
    client = nbclient.NotebookClient(nb, timeout=3600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    minutes = (time.perf_counter() - start) / 60
    grew = (_folder_bytes(cache) - before) / 1e6
    stated = first if grew > 0 else cached  # a run that filled the cache is a first run
    print(f"{path.name}: {minutes:.1f} min", flush=True)
    return {
        "notebook": path.name, "minutes": minutes, "cache_grew_mb": grew, "stated_first": first, "stated_cached": cached,
        "within_50%": "yes" if abs(minutes - stated) <= 0.5 * stated else "NO",  # NO when none is stated
    }  # fmt: skip


def time_command(paths: list[Path], cache: Path | None = None, out: Path = TIMES) -> int:
    """Time ``paths`` on a new empty cache, then again cached, and record both in ``out``; with ``cache``, one pass."""
    from searchkit.measure.report import format_table

    if cache is not None:
        print(f"cache: {cache} ({_folder_bytes(cache) / 1e6:.0f} MB at the start)", flush=True)
        rows = time_notebooks(paths, cache)
        print(format_table(rows, digits=1))
        print(f"total {sum(r['minutes'] for r in rows):.1f} min")
        return 0
    cache = Path(tempfile.mkdtemp(prefix="searchkit-cache-"))
    print(f"cache: {cache} (empty): every notebook on it, then all of them again", flush=True)
    first, again = time_notebooks(paths, cache), time_notebooks(paths, cache)
    rows = [{"notebook": a["notebook"], "first": a["minutes"], "cached": b["minutes"], "stated_first": a["stated_first"],
             "stated_cached": a["stated_cached"]} for a, b in zip(first, again)]  # fmt: skip
    print(format_table(rows, digits=1))
    print(f"total {sum(r['first'] for r in rows):.1f} min the first time, {sum(r['cached'] for r in rows):.1f} once cached")
    write_times(out, {r["notebook"][:2]: (r["first"], r["cached"]) for r in rows}, "python tools/course.py time")
    print(f"wrote {out}: put these minutes in each header and the README's notebook table")
    return 0


def write_times(path: Path, minutes: dict[str, tuple[float, float]], how: str) -> dict:
    """Record ``{"NN": (first, cached)}`` minutes (rounded to 0.1) in the measured file ``path``, keeping other notebooks."""
    import json

    from searchkit.storage import write_text_atomic

    data = json.loads(path.read_text()) if path.is_file() else {"minutes": {}}
    for number, (first, cached) in minutes.items():
        data["minutes"][number] = {"first": round(first, 1), "cached": round(cached, 1), "how": how}
    data["minutes"] = dict(sorted(data["minutes"].items()))
    write_text_atomic(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return data


def read_times(path: Path | None = None) -> dict[str, tuple[float, float]]:
    """Return the measured file's ``{"NN": (first, cached)}`` minutes."""
    import json

    data = json.loads(Path(path or TIMES).read_text())
    return {n: (m["first"], m["cached"]) for n, m in data["minutes"].items()}


def main(argv: list[str] | None = None) -> int:
    """``python tools/course.py exercises|slides|tag|time [DEST | NN ...]``."""
    import argparse

    p = argparse.ArgumentParser(prog="python tools/course.py")
    p.add_argument("action", choices=["exercises", "slides", "tag", "time"])
    p.add_argument("dest", nargs="*", default=[], help="output folder (default: exercises/ or build/slides/); for time: notebook numbers")
    p.add_argument("--cache", type=Path, default=None,
                   help="time: one pass on this SEARCHKIT_CACHE, printed and not recorded (default: a new empty cache, twice)")
    p.add_argument("--out", type=Path, default=TIMES, help="time: the measured file to update (default: docs/notebook-times.json)")
    args = p.parse_args(argv)
    if args.action == "time":
        paths = [p for p in notebook_paths() if not args.dest or p.name[:2] in {d.zfill(2) for d in args.dest}]
        return time_command(paths, args.cache, args.out)
    if len(args.dest) > 1:
        p.error(f"{args.action} takes one output folder, got {len(args.dest)}: {args.dest}")
    args.dest = args.dest[0] if args.dest else None
    if args.action == "tag":
        import nbformat

        for path in notebook_paths():
            nb = nbformat.read(path, as_version=4)
            if tag_slides(nb):
                nbformat.write(nb, path)
        return 0
    if args.action == "slides":
        for path in render_slides(Path(args.dest or ROOT / "build" / "slides")):
            print(path)
        return 0
    written, kept = write_exercises(Path(args.dest or ROOT / "exercises"))
    for path in written:
        print(f"wrote {path}")
    if kept:
        print(f"kept your {len(kept)} existing copies in {kept[0].parent} (delete one to get a fresh copy)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
