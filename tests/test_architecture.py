"""The shape of the package: no import circle, small modules and functions, every module in ARCHITECTURE.md."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import searchkit

PKG = Path(searchkit.__file__).parent
ARCHITECTURE = PKG.parent / "docs" / "ARCHITECTURE.md"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def module_files() -> dict[str, Path]:
    """Return {dotted name relative to searchkit, e.g. 'index.vector' or '__init__': path}."""
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        out[".".join(rel.parts)] = path
    return out


def _type_checking_only(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def import_graph(files: dict[str, Path]) -> dict[str, set[str]]:
    """Return {module: modules of searchkit it imports}, imports inside functions included, TYPE_CHECKING ones not."""
    full = {("searchkit" if name == "__init__" else "searchkit." + name.removesuffix(".__init__")): name for name in files}
    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if _type_checking_only(node, parents):
                continue
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("searchkit"):
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t in full and full[t] != name and t != "searchkit" and not t.endswith(("searchkit", "__init__")):
                    target = full[t]
                    if not target.endswith("__init__"):
                        graph[name].add(target)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """Return one import circle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(graph[v]):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        state[v] = 2
        stack.pop()
        return None

    for v in sorted(graph):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_no_import_circle():
    cycle = find_cycle(import_graph(module_files()))
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_import_graph_sees_imports_inside_functions_but_not_type_checking(tmp_path, monkeypatch):
    (tmp_path / "a.py").write_text("def f():\n    from searchkit.b import x\n")
    (tmp_path / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from searchkit.a import f\n")
    graph = import_graph({"a": tmp_path / "a.py", "b": tmp_path / "b.py"})
    assert graph == {"a": {"b"}, "b": set()}


@pytest.mark.parametrize("name", sorted(module_files()))
def test_module_is_small(name):
    lines = len(module_files()[name].read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"searchkit/{name}.py has {lines} lines (> {MAX_MODULE_LINES}): split it by concern"


def test_functions_are_short():
    long = []
    for name, path in module_files().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{name}.{node.name} ({n} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"


def architecture_rows() -> set[str]:
    """Return the module names of ARCHITECTURE.md's table (its first column)."""
    rows = re.findall(r"^\| `([\w.]+)` \|", ARCHITECTURE.read_text(), flags=re.M)
    return set(rows)


def test_every_module_is_in_the_architecture_table_and_every_row_is_a_module():
    modules = {n.removesuffix(".__init__") for n in module_files() if not n.endswith(".__init__") or n == "__init__"}
    rows = architecture_rows()
    assert not modules - rows, f"modules missing from docs/ARCHITECTURE.md's table: {sorted(modules - rows)}"
    assert not rows - modules, f"rows of docs/ARCHITECTURE.md's table naming no module: {sorted(rows - modules)}"


def test_front_door_names_resolve_to_their_homes():
    for name, module in searchkit._EXPORTS.items():
        home = importlib.import_module(module)
        assert hasattr(home, name), f"searchkit.{name} is said to live in {module}, which does not define it"
        assert getattr(searchkit, name) is getattr(home, name)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        searchkit.nothing_here  # noqa: B018


def test_nothing_below_the_engine_imports_fastapi_or_ipywidgets():
    below = ("corpus", "encoders", "index", "relevance")
    offenders = []
    for name, path in module_files().items():
        if name.split(".")[0] in below and re.search(r"^\s*(from|import) (fastapi|ipywidgets)\b", path.read_text(), re.M):
            offenders.append(name)
    assert not offenders, f"modules below the engine that import FastAPI or ipywidgets: {offenders}"


def test_the_version_has_one_source():
    from importlib.metadata import version

    import tomllib

    from searchkit.serving.app import create_app

    project = tomllib.loads((PKG.parent / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "searchkit.__version__"}
    assert create_app(loader=lambda: None).version == searchkit.__version__
    assert version("searchkit") == searchkit.__version__, "installed metadata is stale: pip install -e . again"
    literal = re.compile(rf"[\"']{re.escape(searchkit.__version__)}[\"']")
    copies = [name for name, path in module_files().items() if name != "__init__" and literal.search(path.read_text())]
    assert not copies, f"modules that write the version out again instead of using searchkit.__version__: {copies}"
