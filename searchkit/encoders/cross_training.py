"""Train a cross-encoder re-ranker from the packaged all-MiniLM-L6-v2 weights on a dataset's training judgments.

Each judged (query, document) pair is a positive; hard negatives are mined with BM25
(:mod:`searchkit.relevance.lexical`, seconds on a CPU where embedding the corpus to mine with the bi-encoder takes
minutes): the documents it ranks highest for the query that are not judged relevant, skipping any that score
above the best positive or within ``MARGIN`` (relative) below it, since those are too often relevant documents
nobody judged (the margin rule of ``sentence_transformers.util.mine_hard_negatives``). sentence-transformers'
``CrossEncoderTrainer`` fits a one-logit head with ``BinaryCrossEntropyLoss``. The output folder is a normal
``CrossEncoder`` folder (load it with
:class:`searchkit.relevance.rerank.Reranker`) plus ``searchkit.json``; it appears whole or not at all.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from searchkit.corpus.datasets import Dataset
from searchkit.encoders.models import DEFAULT_MODEL, resolve_model
from searchkit.errors import DatasetError, InputError
from searchkit.storage import atomic_folder
from searchkit.validation import check_positive_int

MAX_LENGTH = 256  # word pieces of query + document read together (SciFact abstracts mostly fit)
NEGATIVES = 4  # hard negatives mined per judged pair
MARGIN = 0.05  # relative margin: a candidate within 5% of the positive's score is not used as a negative
RANGE_MAX = 50  # negatives come from BM25's top 50: what a re-ranker at depth 50 sees
INFO_FILE = "searchkit.json"


def training_pairs(dataset: Dataset) -> dict[str, list[str]]:
    """Return ``{query_id: [relevant doc ids]}`` of ``dataset``'s judged queries (grade > 0); refuse test judgments."""
    if not isinstance(dataset, Dataset):
        raise InputError(f"give a searchkit Dataset with training judgments, got {type(dataset).__name__}")
    if getattr(dataset, "split", None) == "test":
        raise DatasetError(
            f"{dataset.name} holds test judgments (split='test'): train on the training split, e.g. "
            "load_beir(path, split='train'), and keep the test queries for measuring"
        )
    known = set(dataset.corpus.ids)
    judged = {q: sorted(d for d, g in dataset.qrels[q].items() if g > 0 and d in known)
              for q in dataset.judged_queries()}  # fmt: skip
    pairs = {q: docs for q, docs in sorted(judged.items()) if docs}
    if not pairs:
        raise DatasetError(
            f"{dataset.name} has no judged training queries (a query with a relevant document in the corpus): "
            "give a dataset with qrels, e.g. load_beir(path, split='train')"
        )
    return pairs


def mine_pairs(dataset: Dataset, pairs: dict[str, list[str]]):
    """Return a ``datasets.Dataset`` of (query, text, label): judged pairs as 1, BM25 hard negatives as 0."""
    from datasets import Dataset as HFDataset

    from searchkit.relevance.lexical import BM25

    c = dataset.corpus
    texts = [f"{t} {x}".strip() for t, x in zip(c.titles, c.texts)]
    bm25 = BM25(c.ids, texts)
    rows: dict[str, list] = {"query": [], "text": [], "label": []}
    for q, docs in pairs.items():
        s = bm25.scores(dataset.queries[q])
        limit = (1 - MARGIN) * max(float(s[c.row(d)]) for d in docs)
        top = np.argsort(-s, kind="stable")[:RANGE_MAX]
        negs = [i for i in top if c.ids[i] not in docs and 0 < s[i] < limit][: NEGATIVES * len(docs)]
        for i, label in [(c.row(d), 1.0) for d in docs] + [(int(i), 0.0) for i in negs]:
            rows["query"].append(dataset.queries[q])
            rows["text"].append(texts[i])
            rows["label"].append(label)
    return HFDataset.from_dict(rows)


def _check_args(out: str | Path, epochs: int, batch_size: int, max_steps: int | None, seed: int) -> Path:
    """Check the numbers and the output folder before anything loads; return the output path."""
    check_positive_int("epochs", epochs, hint="passes over the training pairs, e.g. 1")
    check_positive_int("batch_size", batch_size, hint="pairs per step, e.g. 32")
    check_positive_int("max_steps", max_steps, none_ok=True, hint="None: as many as the epochs take")
    check_positive_int("seed", seed, minimum=0)
    if not isinstance(out, (str, Path)) or not str(out).strip():
        raise InputError(f"out must be a folder path for the trained cross-encoder, got {out!r}")
    path = Path(out).expanduser()
    if path.exists():
        raise InputError(f"{path} exists: give a new folder for the trained cross-encoder, or delete that one first")
    return path


def train_cross_encoder(
    dataset: Dataset, out: str | Path, *, epochs: int, batch_size: int, max_steps: int | None, seed: int,
    progress: bool = True, max_length: int = MAX_LENGTH,
) -> dict:  # fmt: skip
    """Train a cross-encoder on the judged pairs of ``dataset`` and mined negatives; save it to ``out``; return info."""
    path = _check_args(out, epochs, batch_size, max_steps, seed)
    check_positive_int("max_length", max_length, minimum=16, maximum=512, hint="word pieces of query + document")
    pairs = training_pairs(dataset)
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import set_seed
    from transformers.utils import logging as hf_logging

    t0 = time.perf_counter()
    hf_logging.set_verbosity_error()  # not the "newly initialized classifier" warning: the head is what we train
    _, source = resolve_model(DEFAULT_MODEL)
    train = mine_pairs(dataset, pairs)
    set_seed(seed)
    model = CrossEncoder(source, num_labels=1, max_length=max_length, device="cpu")
    import torch

    loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(NEGATIVES)))
    with tempfile.TemporaryDirectory(prefix="searchkit-cross-") as work:
        args = CrossEncoderTrainingArguments(
            output_dir=work, num_train_epochs=epochs, per_device_train_batch_size=batch_size,
            max_steps=max_steps if max_steps is not None else -1, learning_rate=2e-5, warmup_steps=0.1,
            seed=seed, data_seed=seed, save_strategy="no", report_to="none", logging_steps=10,
            disable_tqdm=not progress, dataloader_num_workers=0, use_cpu=True,
        )  # fmt: skip
        result = CrossEncoderTrainer(model=model, args=args, train_dataset=train, loss=loss).train()
    labels = train["label"]
    info = {
        "kind": "cross-encoder", "base": DEFAULT_MODEL, "data": dataset.name, "split": getattr(dataset, "split", None),
        "queries": len(pairs), "pairs": int(sum(labels)), "negatives": int(len(labels) - sum(labels)),
        "steps": int(result.global_step), "epochs": epochs, "batch_size": batch_size, "max_steps": max_steps, "seed": seed, "max_length": max_length,
        "loss": round(float(result.training_loss), 4), "seconds": 0.0,
    }  # fmt: skip
    with atomic_folder(path) as tmp:
        model.save_pretrained(str(tmp))
        info["seconds"] = round(time.perf_counter() - t0, 1)
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info
