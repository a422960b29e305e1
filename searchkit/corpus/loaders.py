"""Your own documents: a folder of text files, a ``.jsonl`` file or a ``.csv`` file, read into a Corpus.

Every problem is one line naming the file, the line and the fix; nothing is returned half-read.
"""

from __future__ import annotations

import csv
import io
import os
import re
import stat
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from searchkit.corpus.datasets import Corpus, Dataset, json_lines, load_beir
from searchkit.corpus.pydocs import load_pydocs
from searchkit.errors import DatasetError, InputError
from searchkit.validation import check_text, decode_utf8, path_text

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

MAX_DEPTH = 64  # folders below the corpus folder; deeper ones are skipped (and counted), never walked
KERNEL_ROOTS = ("/proc", "/sys", "/dev")  # files the kernel makes up as they are read: never read, even via a link
OUTSIDE = "linked from outside the folder (--follow-links reads them)"
SPECIAL = "special (pipe, device, socket, /proc or /sys file)"


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _is_kernel(real: str) -> bool:
    return any(_within(real, r) for r in KERNEL_ROOTS)


def _read_text_file(path: str, limit: int) -> tuple[str | None, str]:
    """Return ``(text, "")`` for a readable text file, or ``(None, reason)`` why it was skipped.

    Opened without following a link and without waiting (a pipe swapped in meanwhile is not read); at most
    ``limit`` + 1 bytes are read, whatever size the file claims.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None, "unreadable"
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None, SPECIAL
        blob = f.read(limit + 1)
    if len(blob) > limit:
        return None, f"over {format_size(limit)}"
    if b"\x00" in blob[:8192]:
        return None, "binary"
    try:
        text = blob.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None, "not UTF-8"  # Latin-1 and other encodings: iconv -f latin1 -t utf-8 converts them
    if not text.strip():
        return None, "empty"
    return text, ""


def _entry_kind(entry: os.DirEntry, top: str, follow_links: bool) -> tuple[str, str, os.stat_result | None]:
    """Return ``(path to open, reason to skip or "", stat)`` for one folder entry; links are resolved first."""
    if entry.name.startswith("."):
        return entry.path, "hidden", None
    try:
        if not entry.is_symlink():
            return entry.path, "", entry.stat(follow_symlinks=False)
        real = os.path.realpath(entry.path)
        if _is_kernel(real):
            return real, SPECIAL, None
        if not _within(real, top) and not follow_links:
            return real, OUTSIDE, None
        return real, "", os.stat(real)
    except OSError:  # a broken link, a link loop, a file gone meanwhile
        return entry.path, "broken link or unreadable", None


def _walk(root: Path, follow_links: bool, skipped: Counter) -> list[tuple[str, str]]:
    """Return ``(id, path)`` of every regular file below ``root`` to read, in path order; count what is skipped."""
    top = os.path.realpath(root)
    if _is_kernel(top):
        raise DatasetError(f"{root}: a kernel folder ({top}), not documents: pass a folder of your own files")
    found: list[tuple[str, str]] = []
    seen = {(os.stat(top).st_dev, os.stat(top).st_ino)}
    stack: list[tuple[str, str, int]] = [(str(root), "", 0)]
    while stack:
        folder, rel, depth = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name, reverse=True)
        except OSError:
            skipped["unreadable folder"] += 1
            continue
        for entry in entries:
            path, reason, st = _entry_kind(entry, top, follow_links)
            doc_id = rel + path_text(entry.name)
            if not reason and stat.S_ISDIR(st.st_mode):  # type: ignore[union-attr]
                key = (st.st_dev, st.st_ino)  # type: ignore[union-attr]
                reason = f"deeper than {MAX_DEPTH} folders" if depth >= MAX_DEPTH else "repeated folder" if key in seen else ""
                if not reason:
                    seen.add(key)
                    stack.append((path, doc_id + "/", depth + 1))
                    continue
            elif not reason and not stat.S_ISREG(st.st_mode):  # type: ignore[union-attr]
                reason = SPECIAL
            if reason:
                skipped[reason] += 1
            else:
                found.append((doc_id, path))
    return sorted(found, key=lambda f: f[0].split("/"))


def load_folder(
    folder: str | Path, max_file_size: int = MAX_FILE_SIZE, quiet: bool = False, follow_links: bool = False
) -> Dataset:
    """Read every text file below ``folder``: id = path relative to it, title = first heading or first line.

    Binary, not-UTF-8, hidden, empty and over-size files are skipped, and so are pipes, devices, sockets and
    /proc or /sys files; links are followed only when they stay inside ``folder`` (all of them with
    ``follow_links``); folders deeper than MAX_DEPTH are not walked. The counts by reason are printed once.
    """
    root = Path(folder).expanduser()
    skipped: Counter = Counter()
    files = _walk(root, follow_links, skipped)
    if not files and not skipped:
        raise DatasetError(f"{root}: the folder is empty: put text files (.txt, .md, ...) in it, or pass a .jsonl/.csv file")
    ids, titles, texts = [], [], []
    for doc_id, path in files:
        text, reason = _read_text_file(path, max_file_size)
        if text is None:
            skipped[reason] += 1
            continue
        ids.append(doc_id)
        titles.append(title_of(text))
        texts.append(text.strip())
    why = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
    if not ids:
        raise DatasetError(
            f"{root}: no readable text files ({sum(skipped.values())} skipped: {why}): add UTF-8 text files, "
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
        check_text(doc_id, f"{self.path}:{line}: id", "give every document an id of valid Unicode text, or leave id "
                   "out to number them by line", DatasetError)  # fmt: skip
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
    for line, obj in json_lines(path):
        if not isinstance(obj, dict):
            raise DatasetError(
                f"{path}:{line}: expected a JSON object like {{\"id\": ..., \"text\": ...}}, "
                f"got {type(obj).__name__}: one object per line"
            )
        records.add(line, obj.get("id", obj.get("_id")), obj.get("title"), obj.get("text"))
    return records.dataset()


def load_csv(path: str | Path, text_column: str = "text", max_file_size: int = MAX_FILE_SIZE) -> Dataset:
    """Read a ``.csv`` file with a header row: ``text_column`` holds the text; ``id`` and ``title`` are optional.

    Strict quoting: a quote left open names the line its row starts on, instead of swallowing the rows after it.
    """
    path = Path(path).expanduser()
    _check_size(path, max_file_size)
    csv.field_size_limit(max(max_file_size, 131072))
    records = _Records(path)
    text = decode_utf8(path.read_bytes(), path, DatasetError)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    columns = _csv_row(reader, path)
    if not columns:
        raise DatasetError(f"{path}:1: no header row: start the file with column names, e.g. id,title,text")
    if text_column not in columns:
        raise DatasetError(
            f"{path}:1: no {text_column!r} column in the header (columns: {', '.join(columns)}): "
            "name the text column with --text-column (text_column= in code)"
        )
    while (row := _csv_row(reader, path)) is not None:
        if row:  # blank lines are skipped
            fields = dict(zip(columns, row))
            records.add(reader.line_num, fields.get("id"), fields.get("title"), fields.get(text_column), text_column)
    return records.dataset()


def _csv_row(reader, path: Path) -> list[str] | None:
    """Return the next CSV row (None at the end); a quoting error names the line the row starts on."""
    start = reader.line_num + 1
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as e:
        raise DatasetError(
            f"{path}:{start}: the row starting on line {start} has a quoting error ({e}): close its quote, "
            'and write a quote inside a quoted field as two ("")'
        ) from None


# -- one entry point -------------------------------------------------------------------------------


def is_beir_folder(path: Path) -> bool:
    """True when ``path`` is a folder in the BEIR layout (``corpus.jsonl`` and ``qrels/``)."""
    return (path / "corpus.jsonl").is_file() and (path / "qrels").is_dir()


def load_path(
    spec: str | Path, text_column: str = "text", max_file_size: int = MAX_FILE_SIZE, follow_links: bool = False
) -> Dataset:
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
        return load_folder(path, max_file_size, follow_links=follow_links)
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


def load_dataset(
    spec: str, text_column: str = "text", max_file_size: int | None = None, follow_links: bool = False
) -> Dataset:
    """Load ``"pydocs"`` (built in), ``"wordnet"`` (Debian's wordnet-base), ``"beir:DIR"``, or a path: a folder of text files, a ``.jsonl`` or a ``.csv``.

    A folder holding ``corpus.jsonl`` and ``qrels/`` is read as BEIR; ``./pydocs`` is a folder, not the word.
    ``follow_links``: read a folder's links to files outside it too (never special or /proc files).
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
    return load_path(spec, text_column, MAX_FILE_SIZE if max_file_size is None else max_file_size, follow_links)
