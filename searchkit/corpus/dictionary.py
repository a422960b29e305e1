"""A dictionary corpus of six figures, offline: WordNet 3.0's 117,659 glosses (Debian's ``wordnet-base``).

One document per **synset** (a sense shared by its synonyms: *acrophobia* "a morbid fear of great heights"), not per
headword: a headword such as *bank* has 18 senses that say unrelated things, and a judged query asks for one of
them. The id is the part of speech and the synset's byte offset in its data file (``n14382766``), the identifier
WordNet 3.0 itself uses, so ids never change between runs or machines. The title is the synonyms
(``acrophobia``), the text the gloss with its examples. The judged queries ("a word for fear of heights") are in
``data/dictionary/`` in the BEIR layout.

GCIDE (``dict-gcide``) was left aside: its dictd file is one markup-laden article per headword with numbered senses
inside, without stable sense ids.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from searchkit.config import DATA_DIR
from searchkit.corpus.datasets import Corpus, Dataset, read_qrels, read_queries
from searchkit.errors import DatasetError

WORDNET_DIR = Path("/usr/share/wordnet")  # Debian's wordnet-base; $SEARCHKIT_WORDNET_DIR overrides
JUDGED = DATA_DIR / "dictionary"  # queries.jsonl, qrels/test.tsv: judged queries written for this course
POS_FILES = {"n": "data.noun", "v": "data.verb", "a": "data.adj", "r": "data.adv"}
_MARKER = re.compile(r"\((?:a|p|ip)\)$")  # adjective position markers: "(a)" attributive, "(p)" predicative


def wordnet_dir() -> Path:
    """Return the WordNet folder: ``$SEARCHKIT_WORDNET_DIR`` if set, else Debian's ``/usr/share/wordnet``."""
    return Path(os.environ.get("SEARCHKIT_WORDNET_DIR") or WORDNET_DIR).expanduser()


def parse_line(line: str, path: str | Path = "data", lineno: int = 0) -> tuple[str, str, str] | None:
    """Return ``(offset, synonyms, gloss)`` of one line of a WordNet data file; None for the license header."""
    if not line.strip() or line.startswith("  "):
        return None  # the header lines start with two spaces
    head, bar, gloss = line.partition(" | ")
    fields = head.split()
    try:
        count = int(fields[3], 16)  # w_cnt: two hex digits, then (word, lex_id) pairs
        words = [fields[4 + 2 * i] for i in range(count)]
    except (IndexError, ValueError):
        raise DatasetError(
            f"{path}:{lineno}: not a WordNet data line (offset, lex_filenum, ss_type, w_cnt, words ... | gloss): "
            f"{line[:60]!r}. Fix: point SEARCHKIT_WORDNET_DIR at WordNet 3.0's dict folder (apt-get install wordnet-base)"
        ) from None
    if not bar or not fields[0].isdigit():
        raise DatasetError(f"{path}:{lineno}: no gloss after ' | ' in {line[:60]!r}: the file is damaged; reinstall wordnet-base")
    synonyms = ", ".join(dict.fromkeys(_MARKER.sub("", w).replace("_", " ") for w in words))
    return fields[0], synonyms, gloss.strip()


def read_wordnet(folder: str | Path | None = None) -> Corpus:
    """Read every synset of the four WordNet data files in ``folder`` into a Corpus (id ``<pos><offset>``)."""
    folder = Path(folder) if folder is not None else wordnet_dir()
    missing = [f for f in POS_FILES.values() if not (folder / f).is_file()]
    if missing:
        raise DatasetError(
            f"no WordNet in {folder} ({', '.join(missing)} missing). Fix: apt-get install wordnet-base, "
            "or set SEARCHKIT_WORDNET_DIR to a folder holding data.noun, data.verb, data.adj and data.adv"
        )
    ids, titles, texts = [], [], []
    for pos, name in POS_FILES.items():
        path = folder / name
        with open(path, encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                parsed = parse_line(line, path, lineno)
                if parsed:
                    ids.append(pos + parsed[0])
                    titles.append(parsed[1])
                    texts.append(parsed[2])
    return Corpus(ids, titles, texts)


def load_wordnet(folder: str | Path | None = None, judged: str | Path = JUDGED) -> Dataset:
    """Return WordNet as a Dataset with the course's judged queries (those whose judged ids are in the corpus)."""
    corpus = read_wordnet(folder)
    judged = Path(judged)
    qrels = read_qrels(judged / "qrels" / "test.tsv") if (judged / "qrels" / "test.tsv").is_file() else {}
    qrels = {q: {d: g for d, g in docs.items() if d in corpus} for q, docs in qrels.items()}
    qrels = {q: docs for q, docs in qrels.items() if docs}
    queries = read_queries(judged / "queries.jsonl") if qrels else {}
    return Dataset("wordnet", corpus, {q: t for q, t in queries.items() if q in qrels}, qrels)
