"""The built-in corpus: the docstrings of the Python standard library, collected from the running interpreter."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import json
import os
import pkgutil
import re
import sys
import sysconfig
import warnings
from pathlib import Path
from types import ModuleType

from searchkit.config import DATA_DIR, ROOT, cache_dir
from searchkit.corpus.datasets import Corpus, Dataset, _read_jsonl, read_qrels, read_queries
from searchkit.errors import DatasetError

# Modules that open windows or browsers, print, run code on import, or are tests and tools.
_SKIP = {
    "antigravity", "this", "idlelib", "turtledemo", "test", "pydoc_data", "encodings",
    "xxsubtype", "xxlimited", "xxlimited_35",
    "posix", "nt", "genericpath", "posixpath", "ntpath",
}  # fmt: skip


# Implementation modules whose objects are documented under the public module that re-exports them
# (``posix.listdir`` is ``os.listdir``, ``genericpath.exists`` is ``os.path.exists``). Private modules
# not named here map to their name without underscores (``_io.StringIO`` is ``io.StringIO``).
_BACKING = {"posix": "os", "genericpath": "os.path", "posixpath": "os.path", "_collections_abc": "collections.abc"}


_ALIASES = {"os": ["os.path"]}  # public submodule names that pkgutil does not list


PYDOCS_DIR = DATA_DIR / "pydocs"


def _public(name: str) -> bool:
    """True when no part of the dotted ``name`` starts with an underscore."""
    return not any(part.startswith("_") for part in name.split("."))


def stdlib_module_names() -> list[str]:
    """Return the public standard-library modules and submodules, sorted."""
    names: set[str] = set()
    for top in sorted(sys.stdlib_module_names):
        if not _public(top) or top in _SKIP:
            continue
        names.add(top)
        names.update(_ALIASES.get(top, []))
        mod = _quiet_import(top)
        if mod is None or not hasattr(mod, "__path__"):
            continue
        for info in pkgutil.walk_packages(mod.__path__, prefix=top + ".", onerror=lambda _: None):
            parts = set(info.name.split("."))
            if _public(info.name) and not parts & {"__main__", "test", "tests", "idle_test"}:
                names.add(info.name)
    return sorted(names)


def _quiet_import(name: str):
    """Import ``name``; return None if it fails or prints anything."""
    if name in sys.modules:
        return sys.modules[name]
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mod = importlib.import_module(name)
    except BaseException:  # noqa: BLE001 - any failure means "skip this module"
        return None
    return None if out.getvalue() else mod


class _Named:
    """A default value shown by name: ``os.environ`` would print the collecting process's environment."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return self.name


_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


_BY_NAME = {id(os.environ): _Named("os.environ"), id(os.environb): _Named("os.environb")}


# Defaults that are paths of this installation (the interpreter, the standard library) are shown by name too: the
# corpus must not depend on where the project or the virtual environment was cloned.
_PATHS = {sys.executable: _Named("sys.executable"), sysconfig.get_path("stdlib"): _Named("sysconfig.get_path('stdlib')")}


def _shown(default: object) -> object:
    """Return the default value to print in a signature: machine-specific values by name."""
    named = _BY_NAME.get(id(default))
    if named is None and isinstance(default, str):
        named = _PATHS.get(default)
    return default if named is None else named


def _signature(obj: object) -> str:
    try:
        sig = inspect.signature(obj)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - C functions without text signatures raise many kinds
        return ""
    params = [p.replace(default=_shown(p.default)) for p in sig.parameters.values()]
    # Defaults such as ``<object object at 0x7f...>`` print this process's memory addresses, which differ on every
    # run: the corpus (and every statistic over it) must be the same on every machine, so the address goes.
    return _ADDRESS.sub("", str(sig.replace(parameters=params)))


def _doc(obj: object) -> str:
    doc = getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else ""


def _is_routine(obj: object) -> bool:
    return inspect.isroutine(obj) or isinstance(obj, (classmethod, staticmethod))


def _home(owner: str) -> str | None:
    """Return the public module that documents objects defined in module ``owner``."""
    if owner in _BACKING:
        return _BACKING[owner]
    return owner if _public(owner) else owner.lstrip("_")


def _collect(modules: list[str]) -> Corpus:
    ids: list[str] = []
    titles: list[str] = []
    texts: list[str] = []
    seen: set[int] = set()

    def add(doc_id: str, obj: object, title: str) -> None:
        text = _doc(obj)
        if text and id(obj) not in seen:
            seen.add(id(obj))
            ids.append(doc_id)
            titles.append(title)
            texts.append(text)

    def claims(mod: ModuleType, name: str, attr: str, owner: str, level: int) -> bool:
        # Pass 0: a module claims what it defines. Objects of private modules that no public module
        # of the same name claimed go to the first module that exports them in ``__all__`` (pass 1),
        # then to the first module that holds them at all (pass 2).
        if level == 0:
            return _home(owner) == name
        return not _public(owner) and (level == 2 or attr in getattr(mod, "__all__", ()))

    imported = [(name, mod) for name in modules if (mod := _quiet_import(name)) is not None]
    for level in (0, 1, 2):
        for name, mod in imported:
            if level == 0:
                add(name, mod, name)
            for attr, obj in sorted(vars(mod).items()):
                owner = getattr(obj, "__module__", None)
                if attr.startswith("_") or not isinstance(owner, str):
                    continue
                if not claims(mod, name, attr, owner, level):
                    continue
                qual = f"{name}.{attr}"
                if inspect.isclass(obj):
                    add(qual, obj, qual + _signature(obj))
                    for m_name, member in sorted(vars(obj).items()):
                        if m_name.startswith("_"):
                            continue
                        if _is_routine(member):
                            func = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                            add(f"{qual}.{m_name}", func, f"{qual}.{m_name}{_signature(func)}")
                        elif isinstance(member, property) or inspect.isgetsetdescriptor(member):
                            add(f"{qual}.{m_name}", member, f"{qual}.{m_name}")
                elif _is_routine(obj):
                    add(qual, obj, qual + _signature(obj))
    return Corpus(ids, titles, texts)


def pydocs_passage(doc_id: str, text: str) -> str:
    """Return what the encoder reads for a docstring: its id and first paragraph (the summary).

    Whole docstrings bury the summary under parameter lists: measured on the judged queries,
    id + summary finds the answer far more often than id + signature + full text.
    """
    return f"{doc_id}: {text.split(chr(10) * 2)[0].strip()}"


def _with_passages(corpus: Corpus) -> Corpus:
    corpus.passages = [pydocs_passage(i, x) for i, x in zip(corpus.ids, corpus.texts)]
    return corpus


def build_pydocs_corpus() -> Corpus:
    """Collect the docstrings of this interpreter's standard library (no cache).

    The work runs in a fresh process of the same interpreter, so that what Jupyter or pytest
    patch into ``sys`` or ``pdb`` does not leak in, and 300 imports do not land in the caller.
    """
    import subprocess
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "pydocs.jsonl"
        code = "import sys; from searchkit.corpus.pydocs import _write_jsonl, _collect_here; _write_jsonl(sys.argv[1], _collect_here())"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        r = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, env=env, timeout=600)
        if r.returncode != 0:
            raise DatasetError(f"collecting the Python docs failed: {r.stderr.strip()[-500:]}")
        return _with_passages(_read_corpus(out))


def _collect_here() -> Corpus:
    return _collect(stdlib_module_names())


def _write_jsonl(path: str | Path, corpus: Corpus) -> None:
    tmp = Path(path).with_suffix(".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for i, t, x in zip(corpus.ids, corpus.titles, corpus.texts):
            f.write(json.dumps({"_id": i, "title": t, "text": x}, ensure_ascii=False) + "\n")
    tmp.replace(path)


def _read_corpus(path: Path) -> Corpus:
    rows = list(_read_jsonl(path))
    return Corpus([r["_id"] for r in rows], [r["title"] or "" for r in rows], [r["text"] or "" for r in rows])


PYDOCS_FORMAT = 4  # the cached corpus's name carries it: bump it when the collector changes what a document holds


def load_pydocs_corpus(refresh: bool = False) -> Corpus:
    """Return the Python-docs corpus, built once per Python version and cached under ``data/cache``."""
    version = ".".join(map(str, sys.version_info[:3]))
    path = cache_dir() / f"pydocs-{version}-v{PYDOCS_FORMAT}.jsonl"
    if path.is_file() and not refresh:
        return _with_passages(_read_corpus(path))
    corpus = build_pydocs_corpus()
    _write_jsonl(path, corpus)
    return corpus


def load_pydocs(refresh: bool = False) -> Dataset:
    """Load the built-in Python-docs dataset: the stdlib corpus plus the queries and judgments in ``data/pydocs``."""
    corpus = load_pydocs_corpus(refresh)
    queries = read_queries(PYDOCS_DIR / "queries.jsonl") if (PYDOCS_DIR / "queries.jsonl").is_file() else {}
    qrels_path = PYDOCS_DIR / "qrels" / "test.tsv"
    qrels = read_qrels(qrels_path) if qrels_path.is_file() else {}
    # Judgments may name documents that this Python version lacks; keep only those present.
    qrels = {q: {d: g for d, g in docs.items() if d in corpus} for q, docs in qrels.items()}
    return Dataset("pydocs", corpus, queries, qrels)
