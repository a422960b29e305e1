"""Corpora, queries and relevance judgments: the built-in Python-docs set and the BEIR layout."""

from __future__ import annotations

import csv
import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from searchkit.config import DATA_DIR
from searchkit.errors import DatasetError
from searchkit.validation import check_text, clean_text, decode_utf8, lone_surrogate, parse_json


@dataclass
class Corpus:
    """Documents in a fixed order: ``ids[i]``, ``titles[i]`` and ``texts[i]`` describe row ``i``."""

    ids: list[str]
    titles: list[str]
    texts: list[str]
    passages: list[str] | None = None  # what the encoder and BM25 read; default: title + text
    chunked: bool = False  # split documents longer than the encoder's window into passages (your own files)
    _row: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (len(self.ids) == len(self.titles) == len(self.texts) == len(self.passages or self.ids)):
            raise DatasetError(
                f"corpus columns differ in length: {len(self.ids)} ids, {len(self.titles)} titles, "
                f"{len(self.texts)} texts: give one title and one text per id"
            )
        self._row = {doc_id: i for i, doc_id in enumerate(self.ids)}
        if len(self._row) != len(self.ids):
            seen: set[str] = set()
            dup = next(d for d in self.ids if d in seen or seen.add(d))  # type: ignore[func-returns-value]
            raise DatasetError(f"corpus has duplicate id {dup!r}: every document needs a unique id")
        _valid_text(self)

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, doc_id: str) -> int:
        """Return the row number of ``doc_id``."""
        try:
            return self._row[doc_id]
        except KeyError:
            raise DatasetError(f"no document with id {doc_id!r} in this corpus") from None

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._row

    def embedding_texts(self) -> list[str]:
        """Return what the encoder and BM25 read: ``passages`` if set, else ``title + " " + text``."""
        return list(self.passages) if self.passages is not None else self.full_texts()

    def full_texts(self) -> list[str]:
        """Return ``title + " " + text`` for every document (what BM25 indexes).

        Your own files (``chunked``) take their title from their first heading or line: their text alone then.
        """
        return [x.strip() if self.chunked and t and t in x.lstrip().split("\n", 1)[0] else f"{t} {x}".strip()
                for t, x in zip(self.titles, self.texts)]  # fmt: skip

    def doc(self, doc_id: str) -> dict[str, str]:
        """Return one document as ``{"id", "title", "text"}``."""
        i = self.row(doc_id)
        return {"id": self.ids[i], "title": self.titles[i], "text": self.texts[i]}


def _valid_text(c: Corpus) -> None:
    """Apply the text rule (searchkit.validation): ids must be valid Unicode; titles and texts are cleaned."""
    for i, doc_id in enumerate(c.ids):
        if isinstance(doc_id, str) and lone_surrogate(doc_id) is not None:
            check_text(doc_id, f"document id {i}", "give every document an id of valid Unicode text", DatasetError)
    for name in ("titles", "texts", "passages"):
        column = getattr(c, name)
        if column is not None and any(isinstance(t, str) and lone_surrogate(t) is not None for t in column):
            setattr(c, name, [clean_text(t) if isinstance(t, str) else t for t in column])


@dataclass
class Dataset:
    """A corpus with queries (``{query_id: text}``) and graded judgments (``{query_id: {doc_id: grade}}``)."""

    name: str
    corpus: Corpus
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    split: str | None = None  # which judgments these are (BEIR: "train", "dev", "test"); None: not from a split

    def judged_queries(self) -> dict[str, str]:
        """Return only the queries that have at least one relevant document."""
        return {q: t for q, t in self.queries.items() if any(g > 0 for g in self.qrels.get(q, {}).values())}

    def subset(self, n_queries: int = 20, n_other: int = 150) -> Dataset:
        """Return a small, fixed slice: the first ``n_queries`` judged queries (by id), every document judged
        for them, and ``n_other`` other documents spread evenly over the corpus (distractors)."""
        if n_queries < 1 or n_other < 0:
            raise DatasetError(f"subset(n_queries={n_queries}, n_other={n_other}): use n_queries >= 1, n_other >= 0")
        qids = sorted(self.judged_queries())[:n_queries]
        others = self.corpus.ids[:: max(1, len(self.corpus) // n_other)][:n_other] if n_other else []
        keep = {doc for q in qids for doc in self.qrels[q]} | set(others)
        rows = [i for i, doc in enumerate(self.corpus.ids) if doc in keep]
        c = self.corpus
        corpus = Corpus(
            [c.ids[i] for i in rows], [c.titles[i] for i in rows], [c.texts[i] for i in rows],
            None if c.passages is None else [c.passages[i] for i in rows],
        )  # fmt: skip
        queries, qrels = {q: self.queries[q] for q in qids}, {q: self.qrels[q] for q in qids}
        return Dataset(f"{self.name}-subset", corpus, queries, qrels, self.split)


# ---------------------------------------------------------------------------------------------
# BEIR layout: corpus.jsonl, queries.jsonl, qrels/test.tsv
# ---------------------------------------------------------------------------------------------


def json_lines(path: Path) -> Iterator[tuple[int, object]]:
    """Yield ``(line number, value)`` for each non-blank line of a JSON-lines file, reading one line at a time.

    Text that is not UTF-8 and a line that is not JSON (bad syntax, a 5,000-digit number, deep nesting) are one
    DatasetError naming the file, the line (and byte offset) and the fix.
    """
    offset = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            line = decode_utf8(raw, path, DatasetError, line=lineno, offset=offset)
            offset += len(raw)
            if line.strip():
                yield lineno, parse_json(line, f"{path}:{lineno}", "fix or remove that line", DatasetError)


def _read_jsonl(path: Path) -> Iterator[dict]:
    for lineno, record in json_lines(path):
        if not isinstance(record, dict) or "_id" not in record:
            raise DatasetError(f"{path}:{lineno}: expected a JSON object with an \"_id\": one record per line")
        yield record


def read_queries(path: str | Path) -> dict[str, str]:
    """Read a BEIR ``queries.jsonl`` into ``{query_id: text}``."""
    return {str(r["_id"]): r["text"] for r in _read_jsonl(Path(path))}


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels TSV (``query-id, corpus-id, score`` with a header) into nested dicts."""
    qrels: dict[str, dict[str, int]] = {}
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter="\t")
        for lineno, row in enumerate(reader, 1):
            if not row or (lineno == 1 and not row[-1].lstrip("-").isdigit()):
                continue
            if len(row) != 3:
                raise DatasetError(f"{path}:{lineno} has {len(row)} columns; expected query-id, corpus-id, score")
            qrels.setdefault(row[0], {})[row[1]] = int(row[2])
    return qrels


def load_beir(path: str | Path, split: str = "test") -> Dataset:
    """Load a dataset in the BEIR layout from folder ``path``."""
    root = Path(path).expanduser()
    needed = [root / "corpus.jsonl", root / "queries.jsonl", root / "qrels" / f"{split}.tsv"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise DatasetError(
            f"{root} is not a BEIR dataset folder: missing {', '.join(missing)}. "
            "It needs corpus.jsonl, queries.jsonl and qrels/<split>.tsv; "
            "download one with searchkit.download_beir(name) or unzip it there."
        )
    ids, titles, texts = [], [], []
    for r in _read_jsonl(needed[0]):
        ids.append(str(r["_id"]))
        titles.append(r.get("title") or "")
        texts.append(r.get("text") or "")
    qrels = read_qrels(needed[2])
    queries = {q: t for q, t in read_queries(needed[1]).items() if q in qrels}
    return Dataset(root.name, Corpus(ids, titles, texts), queries, qrels, split)


# md5 of the archives the BEIR authors publish (from their dataset table).
BEIR_MD5 = {
    "scifact": "5f7d1de60b170fc8027bb7898e2efca1",
    "nfcorpus": "a89dba18a62ef92f7d323ec890a0d38d",
    "arguana": "8ad3e3c2a5867cdced806d6503f29b99",
    "fiqa": "17918ed23cd04fb15047f73e6c3bd9d9",
    "scidocs": "38121350fc3a4d2f48850f6aff52e4a9",
}
BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"


def download_beir(name: str, dest: str | Path | None = None, timeout: float = 30.0) -> Path:
    """Download BEIR dataset ``name`` into ``data/beir/<name>`` (checksum-verified) and return the folder."""
    import urllib.error
    import urllib.request

    if name not in BEIR_MD5:
        raise DatasetError(f"unknown BEIR dataset {name!r}: choose one of {', '.join(sorted(BEIR_MD5))}")
    root = Path(dest) if dest else DATA_DIR / "beir"
    target = root / name
    if (target / "corpus.jsonl").is_file():
        return target
    url = BEIR_URL.format(name=name)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            blob = r.read()
    except (urllib.error.URLError, OSError) as e:
        raise DatasetError(
            f"could not download BEIR {name!r} from {url} ({e}). Offline? Put corpus.jsonl, queries.jsonl "
            f"and qrels/test.tsv in {target}/ by hand, or pass their folder to load_beir(path)."
        ) from None
    got = hashlib.md5(blob).hexdigest()
    if got != BEIR_MD5[name]:
        raise DatasetError(f"download of {name!r} is corrupt: md5 {got}, expected {BEIR_MD5[name]}; try again")
    root.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        z.extractall(root)
    return target


# ---------------------------------------------------------------------------------------------
# The built-in corpus: docstrings of Python's standard library
# ---------------------------------------------------------------------------------------------


def concatenate_documents(dataset: Dataset, per_doc: int = 6, seed: int = 0, keep: int | None = None) -> Dataset:
    """Return ``dataset`` with its documents shuffled and joined ``per_doc`` at a time into long documents.

    A long document is judged relevant to a query with the highest grade of the documents it holds, so the
    original judgments carry over. ``keep`` limits the corpus to that many documents: every judged one first,
    then a seeded sample of the rest. Long documents are ``chunked`` (cut into passages by the engine).
    """
    import random

    if per_doc < 1:
        raise DatasetError(f"per_doc must be at least 1, got {per_doc}")
    c, rng = dataset.corpus, random.Random(seed)
    judged = {d for q in dataset.judged_queries() for d, g in dataset.qrels[q].items() if g > 0 and d in c}
    rest = [d for d in c.ids if d not in judged]
    rng.shuffle(rest)
    ids = sorted(judged) + rest[: max(0, (keep or len(c)) - len(judged))]
    rng.shuffle(ids)
    groups = [ids[i : i + per_doc] for i in range(0, len(ids), per_doc)]
    home = {d: f"long-{g}" for g, members in enumerate(groups) for d in members}
    texts = ["\n\n".join(f"{c.titles[c.row(d)]}\n{c.texts[c.row(d)]}".strip() for d in m) for m in groups]
    corpus = Corpus([f"long-{g}" for g in range(len(groups))], [""] * len(groups), texts, chunked=True)
    qrels: dict[str, dict[str, int]] = {}
    for q, docs in dataset.qrels.items():
        for d, g in docs.items():
            if d in home:
                qrels.setdefault(q, {})[home[d]] = max(g, qrels.get(q, {}).get(home[d], g))
    return Dataset(f"{dataset.name}-x{per_doc}", corpus, dataset.queries, qrels, dataset.split)
