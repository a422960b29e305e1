"""Your own documents: a folder of text files, a ``.jsonl`` file or a ``.csv`` file, read into a Corpus.

Every problem is one line naming the file, the line and the fix; nothing is returned half-read.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from searchkit.corpus.datasets import Corpus, Dataset, load_beir
from searchkit.corpus.pydocs import load_pydocs
from searchkit.errors import DatasetError, InputError

MAX_FILE_SIZE = 10 * 1024**2  # bytes: larger files are skipped unless --max-file-size says otherwise
_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?B?)\s*$", re.IGNORECASE)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(\S.*?)\s*#*\s*$")
TITLE_CHARS = 200
READERS: dict[str, Callable[[Path], Corpus]] = {}  # your own formats: file suffix (".tsv") -> reader returning a Corpus


def parse_size(value: str | int, name: str = "size") -> int:
    """Return a size such as ``'512MB'``, ``'2GB'``, ``'1.5 GB'`` or ``1000`` in bytes (units of 1024)."""
    if isinstance(value, bool):
        raise InputError(f"{name} {value!r} is not a size: give a number of bytes or a size like 512MB or 2GB")
    if isinstance(value, int):
        n = value
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise InputError(f"{name} {value!r} is not a size: write it like 512MB, 2GB or 10000 (bytes)")
        unit = m.group(2).upper()
        unit = unit if unit.endswith("B") or not unit else unit + "B"
        n = int(float(m.group(1)) * _UNITS[unit])
    if n <= 0:
        raise InputError(f"{name} must be positive, got {value!r}: give a size like 512MB")
    return n


def format_size(n: float) -> str:
    """Return ``n`` bytes in the largest unit that keeps it at least 1 (``'1.5 MB'``)."""
    for unit in ("TB", "GB", "MB", "KB"):
        if n >= _UNITS[unit]:
            return f"{n / _UNITS[unit]:.3g} {unit}"
    return f"{int(n)} B"


def _round_up(n: int) -> str:
    """Return the smallest whole number of n's largest unit that holds ``n`` bytes, e.g. ``'3KB'``."""
    unit = next((u for u in ("TB", "GB", "MB", "KB") if n >= _UNITS[u]), "B")
    return f"{-(-n // _UNITS[unit])}{unit}"


def title_of(text: str) -> str:
    """Return a document's title: its first Markdown heading, else its first non-empty line."""
    lines = [line for line in text.splitlines() if line.strip()]
    for line in lines:
        m = _HEADING.match(line)
        if m:
            return m.group(1)[:TITLE_CHARS]
    return lines[0].strip()[:TITLE_CHARS] if lines else ""


def _say(message: str) -> None:
    """Tell the user what the loader did (stderr, so ``--json`` output stays clean)."""
    print(message, file=sys.stderr, flush=True)


def _check_size(path: Path, limit: int) -> None:
    size = path.stat().st_size
    if size > limit:
        raise DatasetError(
            f"{path}: {format_size(size)} is over the {format_size(limit)} file-size limit: "
            f"raise it with --max-file-size {_round_up(size)} (max_file_size= in code)"
        )


# -- a folder of text files ----------------------------------------------------------------------


def _read_text_file(path: Path, limit: int) -> tuple[str | None, str]:
    """Return ``(text, "")`` for a readable text file, or ``(None, reason)`` why it was skipped."""
    if path.stat().st_size > limit:
        return None, f"over {format_size(limit)}"
    blob = path.read_bytes()
    if b"\x00" in blob[:8192]:
        return None, "binary"
    try:
        text = blob.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, "binary"  # not UTF-8 text: images, archives, other encodings
    if not text.strip():
        return None, "empty"
    return text, ""


def _is_hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def load_folder(folder: str | Path, max_file_size: int = MAX_FILE_SIZE, quiet: bool = False) -> Dataset:
    """Read every text file below ``folder``: id = path relative to it, title = first heading or first line.

    Binary, hidden, empty and over-size files are skipped; the counts by reason are printed once.
    """
    root = Path(folder).expanduser()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    if not files:
        raise DatasetError(f"{root}: the folder is empty: put text files (.txt, .md, ...) in it, or pass a .jsonl/.csv file")
    ids, titles, texts, skipped = [], [], [], Counter()
    for path in files:
        rel = path.relative_to(root)
        if _is_hidden(rel):
            skipped["hidden"] += 1
            continue
        text, reason = _read_text_file(path, max_file_size)
        if text is None:
            skipped[reason] += 1
            continue
        ids.append(rel.as_posix())
        titles.append(title_of(text))
        texts.append(text.strip())
    why = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
    if not ids:
        raise DatasetError(
            f"{root}: no readable text files ({len(files)} skipped: {why}): add UTF-8 text files, "
            "or raise --max-file-size if they are large"
        )
    if not quiet:
        _say(f"loaded {len(ids)} documents from {root}" + (f" (skipped {sum(skipped.values())}: {why})" if why else ""))
    return Dataset(root.name or str(root), Corpus(ids, titles, texts, chunked=True), {}, {})


# -- one file of records ---------------------------------------------------------------------------


class _Records:
    """Collects ``(id, title, text)`` records, naming the file and line of the first duplicate id."""

    def __init__(self, path: Path):
        self.path, self.ids, self.titles, self.texts, self.line_of = path, [], [], [], {}

    def add(self, line: int, doc_id: object, title: object, text: object, text_name: str = "text") -> None:
        """Add the record on ``line``, or raise DatasetError naming the file, line and fix."""
        if not isinstance(text, str) or not text.strip():
            raise DatasetError(
                f"{self.path}:{line}: {text_name!r} is {'missing' if text is None else repr(text)[:40]}: "
                f"give every record a non-empty {text_name!r} (or remove that line)"
            )
        doc_id = f"{self.path.name}:{line}" if doc_id in (None, "") else str(doc_id)
        if doc_id in self.line_of:
            raise DatasetError(
                f"{self.path}:{line}: duplicate id {doc_id!r} (first on line {self.line_of[doc_id]}): "
                "give every document its own id, or leave id out to number them by line"
            )
        self.line_of[doc_id] = line
        self.ids.append(doc_id)
        self.titles.append(str(title).strip()[:TITLE_CHARS] if title not in (None, "") else title_of(text))
        self.texts.append(text.strip())

    def dataset(self) -> Dataset:
        """Return the records as a Dataset named after the file (no queries)."""
        if not self.ids:
            raise DatasetError(f"{self.path}: no documents in the file: add records, one per line")
        return Dataset(self.path.stem, Corpus(self.ids, self.titles, self.texts, chunked=True), {}, {})


def load_jsonl(path: str | Path, max_file_size: int = MAX_FILE_SIZE) -> Dataset:
    """Read a ``.jsonl`` file of ``{"id", "title", "text"}`` objects (id and title optional; id = ``FILE:LINE``)."""
    path = Path(path).expanduser()
    _check_size(path, max_file_size)
    records = _Records(path)
    with open(path, encoding="utf-8-sig") as f:
        for line, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as e:
                raise DatasetError(f"{path}:{line}: not valid JSON ({e.msg}): fix or remove that line") from None
            if not isinstance(obj, dict):
                raise DatasetError(
                    f"{path}:{line}: expected a JSON object like {{\"id\": ..., \"text\": ...}}, "
                    f"got {type(obj).__name__}: one object per line"
                )
            records.add(line, obj.get("id", obj.get("_id")), obj.get("title"), obj.get("text"))
    return records.dataset()


def load_csv(path: str | Path, text_column: str = "text", max_file_size: int = MAX_FILE_SIZE) -> Dataset:
    """Read a ``.csv`` file with a header row: ``text_column`` holds the text; ``id`` and ``title`` are optional."""
    path = Path(path).expanduser()
    _check_size(path, max_file_size)
    csv.field_size_limit(max(max_file_size, 131072))
    records = _Records(path)
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames
        if not columns:
            raise DatasetError(f"{path}:1: no header row: start the file with column names, e.g. id,title,text")
        if text_column not in columns:
            raise DatasetError(
                f"{path}:1: no {text_column!r} column in the header (columns: {', '.join(columns)}): "
                "name the text column with --text-column (text_column= in code)"
            )
        for row in reader:
            records.add(reader.line_num, row.get("id"), row.get("title"), row.get(text_column), text_column)
    return records.dataset()


# -- one entry point -------------------------------------------------------------------------------


def is_beir_folder(path: Path) -> bool:
    """True when ``path`` is a folder in the BEIR layout (``corpus.jsonl`` and ``qrels/``)."""
    return (path / "corpus.jsonl").is_file() and (path / "qrels").is_dir()


def load_path(spec: str | Path, text_column: str = "text", max_file_size: int = MAX_FILE_SIZE) -> Dataset:
    """Load a folder, a ``.jsonl`` or a ``.csv`` file; a BEIR folder is recognized and loaded as BEIR."""
    path = Path(spec).expanduser()
    if not path.exists():
        raise DatasetError(
            f"{spec}: no such file or folder: check the path ('pydocs' means the built-in corpus, "
            "'beir:DIR' a BEIR folder)"
        )
    if path.is_dir():
        if is_beir_folder(path):
            _say(f"{path} holds corpus.jsonl and qrels/: loading it as a BEIR dataset")
            return load_beir(path)
        return load_folder(path, max_file_size)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return load_jsonl(path, max_file_size)
    if suffix == ".csv":
        return load_csv(path, text_column, max_file_size)
    if suffix in READERS:
        _check_size(path, max_file_size)
        return Dataset(path.stem, READERS[suffix](path), {}, {})
    raise DatasetError(
        f"{path}: not a .jsonl or .csv file: pass the folder that holds it to index every text file there, "
        "or save the documents as .jsonl ({\"id\", \"title\", \"text\"} per line) or .csv with a text column"
    )


def load_dataset(spec: str, text_column: str = "text", max_file_size: int | None = None) -> Dataset:
    """Load ``"pydocs"`` (built in), ``"wordnet"`` (Debian's wordnet-base), ``"beir:DIR"``, or a path: a folder of text files, a ``.jsonl`` or a ``.csv``.

    A folder holding ``corpus.jsonl`` and ``qrels/`` is read as BEIR; ``./pydocs`` is a folder, not the word.
    """
    if not isinstance(spec, (str, os.PathLike)) or not str(spec).strip():
        raise DatasetError(f"corpus {spec!r} is empty: use 'pydocs', 'beir:DIR', a folder, a .jsonl or a .csv file")
    spec = str(spec)
    if spec == "pydocs":
        return load_pydocs()
    if spec == "wordnet":  # WordNet 3.0 glosses, one document per synset (searchkit.corpus.dictionary)
        from searchkit.corpus.dictionary import load_wordnet

        return load_wordnet()
    if spec.startswith("beir:"):
        if not spec[5:]:
            raise DatasetError("'beir:' needs a folder after the colon: beir:DIR (a folder with corpus.jsonl)")
        return load_beir(spec[5:])
    return load_path(spec, text_column, MAX_FILE_SIZE if max_file_size is None else max_file_size)
