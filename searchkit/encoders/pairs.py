"""Training pairs for fine-tuning a bi-encoder: judged queries, or pairs made from unlabeled documents.

Three regimes (``Pairs.regime``): ``judged`` (a query and a document judged relevant to it: SciFact's training
split, the Python docs' judged queries), ``cloze`` (inverse cloze: one sentence of a passage as the query, the
rest of the passage as the positive) and ``heading`` (a title or Markdown heading as the query, its body as the
positive). Hard negatives come from ``sentence_transformers.util.mine_hard_negatives`` (:func:`mine_negatives`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from searchkit.corpus.datasets import Corpus, Dataset, load_beir
from searchkit.errors import DatasetError, InputError

Regime = str  # "judged", "cloze", "heading" or "cloze+heading"
MIN_WORDS = 5  # a cloze query shorter than this is too vague to point at one passage
PASSAGE_WORDS = 160  # inverse-cloze passages: paragraphs joined up to about this many words
RELATIVE_MARGIN = 0.05  # a mined negative scores at most 95% of its positive (NV-Retriever's "TopK-PercPos")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(`])")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(\S.*?)\s*#*\s*$")


@dataclass
class Pairs:
    """Training pairs: ``anchors[i]`` (a query) and ``positives[i]`` (a text that answers it), plus mined negatives."""

    anchors: list[str]
    positives: list[str]
    regime: Regime
    source: str  # where the pairs came from, for searchkit.json
    negatives: list[list[str]] = field(default_factory=list)  # per pair, when mined
    queries: int = 0  # distinct anchors

    def __len__(self) -> int:
        return len(self.anchors)

    def __repr__(self) -> str:
        neg = f", {len(self.negatives[0])} hard negatives each" if self.negatives else ""
        return f"Pairs({len(self)} {self.regime} pairs from {self.source}, {self.queries} queries{neg})"

    def examples(self, n: int = 3) -> list[dict]:
        """Return the first ``n`` pairs as ``{"anchor", "positive"[, "negative"]}`` rows, texts cut to 120 characters."""
        rows = []
        for i in range(min(n, len(self))):
            row = {"anchor": self.anchors[i][:120], "positive": self.positives[i][:120]}
            if self.negatives:
                row["negative"] = self.negatives[i][0][:120]
            rows.append(row)
        return rows

    def to_hf(self):
        """Return the pairs as a ``datasets.Dataset`` with columns anchor, positive[, negative_1 ...]."""
        from datasets import Dataset as HFDataset

        columns = {"anchor": self.anchors, "positive": self.positives}
        for j in range(len(self.negatives[0]) if self.negatives else 0):
            columns[f"negative_{j + 1}"] = [negs[j] for negs in self.negatives]
        return HFDataset.from_dict(columns)


def training_dataset(spec: str, split: str = "train", text_column: str = "text") -> Dataset:
    """Load the corpus ``spec`` for training: ``beir:DIR`` (its ``qrels/<split>.tsv``), ``pydocs``, or your files.

    Refuses ``split="test"``: the test queries score a model, and one trained on them scores too well.
    """
    from searchkit.corpus.loaders import is_beir_folder, load_dataset

    if split == "test":
        raise InputError("split='test': never train on the test queries, they are what the tuned model is scored on; "
                         "train on split='train' (SciFact: qrels/train.tsv) and score on test")  # fmt: skip
    path = Path(spec[5:] if spec.startswith("beir:") else spec).expanduser()
    if spec.startswith("beir:") or (path.is_dir() and is_beir_folder(path)):
        if not (path / "qrels" / f"{split}.tsv").is_file():
            raise DatasetError(
                f"{path} has no qrels/{split}.tsv: fine-tuning needs judged training queries apart from the test "
                f"ones; add qrels/{split}.tsv (query-id, corpus-id, score) or train on unlabeled documents instead "
                f"(--corpus {path}/corpus.jsonl)"
            )
        return load_beir(path, split=split)
    return load_dataset(spec, text_column)


def judged_pairs(dataset: Dataset, qids: Sequence[str] | None = None) -> Pairs:
    """Return one pair per (judged query, relevant document) of ``dataset`` (only ``qids`` when given)."""
    if dataset.split == "test":
        raise InputError(f"dataset {dataset.name!r} holds the test split's judgments: never train on them; load "
                         "the training split with training_dataset(spec) or load_beir(path, split='train')")  # fmt: skip
    judged = dataset.judged_queries()
    wanted = sorted(judged) if qids is None else [q for q in qids if q in judged]
    corpus, texts = dataset.corpus, dataset.corpus.embedding_texts()
    anchors, positives = [], []
    for q in wanted:
        for doc, grade in sorted(dataset.qrels[q].items()):
            if grade > 0 and doc in corpus:
                anchors.append(judged[q])
                positives.append(texts[corpus.row(doc)])
    if not anchors:
        raise DatasetError(
            f"{dataset.name!r} has no judged training queries (queries with a relevant document in the corpus): "
            "give a BEIR folder with qrels/train.tsv, 'pydocs', or train on unlabeled documents (a folder, .jsonl "
            "or .csv: inverse-cloze and heading pairs)"
        )
    return Pairs(anchors, positives, "judged", dataset.name, queries=len({a for a in anchors}))


def sentences(text: str) -> list[str]:
    """Split ``text`` into sentences (on ., ! and ? before a capital, a digit or a quote; and on lines)."""
    out = []
    for line in text.splitlines():
        out.extend(s.strip() for s in _SENTENCE.split(line) if s.strip())
    return out


def passages_of(text: str, words: int = PASSAGE_WORDS) -> list[str]:
    """Return ``text``'s paragraphs (split on blank lines) joined into passages of about ``words`` words."""
    out, cur, n = [], [], 0
    for para in (p.strip() for p in re.split(r"\n\s*\n", text)):
        if not para:
            continue
        if cur and n + len(para.split()) > words:
            out.append("\n\n".join(cur))
            cur, n = [], 0
        cur.append(para)
        n += len(para.split())
    if cur:
        out.append("\n\n".join(cur))
    return out


def cloze_pairs(corpus: Corpus, seed: int = 0, keep_query: float = 0.1, per_passage: int = 3) -> list[tuple[str, str]]:
    """Return inverse-cloze pairs: a sentence of a passage as the query, the passage without it as the positive.

    Up to ``per_passage`` sentences of at least ``MIN_WORDS`` words per passage, chosen with ``seed``; the sentence
    is left in its passage with probability ``keep_query`` (as in the inverse cloze task: the model also learns
    that word overlap counts, but not only that).
    """
    rng = random.Random(seed)
    out = []
    for text in corpus.texts:
        for passage in passages_of(text):
            sents = sentences(passage)
            if len(sents) < 2:
                continue
            picks = [i for i, s in enumerate(sents) if len(s.split()) >= MIN_WORDS and not _HEADING.match(s)]
            for i in sorted(rng.sample(picks, min(per_passage, len(picks)))):
                rest = sents if rng.random() < keep_query else sents[:i] + sents[i + 1 :]
                out.append((sents[i].lstrip("-*• ").strip(), " ".join(rest)))
    return out


def heading_pairs(corpus: Corpus) -> list[tuple[str, str]]:
    """Return (heading, body) pairs: each Markdown heading with the text below it, and each title with its text."""
    out = []
    for title, text in zip(corpus.titles, corpus.texts):
        heading, body = None, []
        for line in [*text.splitlines(), "# end"]:
            m = _HEADING.match(line)
            if m:
                if heading and len(" ".join(body).split()) >= MIN_WORDS:
                    out.append((heading, "\n".join(body).strip()))
                heading, body = m.group(1), []
            elif heading is not None:
                body.append(line)
        if title and not any(title == h for h, _ in out[-50:]) and len(text.split()) >= 2 * MIN_WORDS:
            out.append((title, text))
    return out


def document_pairs(dataset: Dataset, regime: Regime = "cloze+heading", seed: int = 0) -> Pairs:
    """Return pairs made from ``dataset``'s documents alone: ``cloze``, ``heading`` or ``cloze+heading``."""
    if regime not in ("cloze", "heading", "cloze+heading"):
        raise InputError(f"regime {regime!r}: choose 'cloze', 'heading' or 'cloze+heading' for unlabeled documents")
    pairs = (cloze_pairs(dataset.corpus, seed) if "cloze" in regime else []) + (
        heading_pairs(dataset.corpus) if "heading" in regime else []
    )
    if len(pairs) < 2:
        raise DatasetError(
            f"{dataset.name!r}: only {len(pairs)} training pairs could be made from its {len(dataset.corpus)} "
            f"documents (sentences of at least {MIN_WORDS} words, or headings with a body): add documents with "
            "whole sentences, or train on judged queries"
        )
    return Pairs([a for a, _ in pairs], [p for _, p in pairs], regime, dataset.name, queries=len({a for a, _ in pairs}))


def make_pairs(dataset: Dataset, seed: int = 0, qids: Sequence[str] | None = None) -> Pairs:
    """Return judged pairs when ``dataset`` has judged queries, else inverse-cloze and heading pairs."""
    if dataset.judged_queries() or dataset.split:
        return judged_pairs(dataset, qids)
    return document_pairs(dataset, seed=seed)


def mine_negatives(pairs: Pairs, model, corpus: Sequence[str], num_negatives: int = 1, range_max: int = 50,
                   relative_margin: float = RELATIVE_MARGIN, cache_folder: str | None = None,
                   corpus_vectors=None) -> Pairs:  # fmt: skip
    """Return ``pairs`` with ``num_negatives`` hard negatives each, mined from ``corpus`` by ``model``.

    A candidate is one of the ``range_max`` texts the model ranks highest for the anchor, never a positive of the
    same anchor, and it must score at most ``1 - relative_margin`` times the positive's score: the few that score
    nearly as high are most often unjudged relevant texts (false negatives), which would teach the model to push
    answers away. Pairs with no such candidate are dropped, as ``mine_hard_negatives`` does. ``corpus_vectors``
    (the model's unit vectors of ``corpus``, e.g. from searchkit's embedding cache) saves embedding it again.
    """
    from sentence_transformers.util import mine_hard_negatives

    if cache_folder and corpus_vectors is not None:
        _seed_mining_cache(Path(cache_folder), model, list(corpus), pairs.positives, corpus_vectors)
    mined = mine_hard_negatives(
        pairs.to_hf().select_columns(["anchor", "positive"]), model, corpus=list(corpus),
        num_negatives=num_negatives, range_max=range_max, relative_margin=relative_margin,
        sampling_strategy="top", output_format="n-tuple", batch_size=64, verbose=False, cache_folder=cache_folder,
    )  # fmt: skip
    negs = [[row[f"negative_{j + 1}"] for j in range(num_negatives)] for row in mined]
    return Pairs(list(mined["anchor"]), list(mined["positive"]), pairs.regime, pairs.source, negs, pairs.queries)


def _seed_mining_cache(folder: Path, model, corpus: list[str], positives: list[str], vectors) -> None:
    """Write ``vectors`` where ``mine_hard_negatives(cache_folder=folder)`` looks for its corpus embeddings."""
    import hashlib

    import numpy as np

    from searchkit.storage import save_arrays_atomic

    texts = list(dict.fromkeys(corpus + positives))  # the corpus as mine_hard_negatives de-duplicates it
    if texts != list(dict.fromkeys(corpus)) or len(vectors) != len(corpus) or len(texts) != len(corpus):
        return  # positives outside the corpus or repeated texts: let it embed the corpus itself
    name = model.model_card_data.base_model or ""
    key = hashlib.sha256(repr((name, None, None, texts)).encode()).hexdigest()
    path = folder / f"corpus_embeddings_{key}.npy"
    if not path.is_file():
        save_arrays_atomic(path, np.ascontiguousarray(vectors, dtype=np.float32))
