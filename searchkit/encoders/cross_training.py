"""Train a cross-encoder re-ranker from the packaged all-MiniLM-L6-v2 weights on a dataset's training judgments.

Each judged (query, document) pair is a positive; hard negatives are mined with the packaged bi-encoder
(``sentence_transformers.util.mine_hard_negatives``): the documents it ranks highest for the query that are
not judged relevant, skipping any that score within ``MARGIN`` (relative) of the positive, since those are too
often relevant documents nobody judged. sentence-transformers' ``CrossEncoderTrainer`` fits a one-logit head
with ``BinaryCrossEntropyLoss``. The output folder is a normal ``CrossEncoder`` folder (load it with
:class:`searchkit.relevance.rerank.Reranker`) plus ``searchkit.json``; it appears whole or not at all.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from searchkit.corpus.datasets import Dataset
from searchkit.encoders.models import DEFAULT_MODEL, resolve_model
from searchkit.errors import DatasetError, InputError
from searchkit.storage import atomic_folder
from searchkit.validation import check_positive_int

MAX_LENGTH = 256  # word pieces of query + document read together (SciFact abstracts mostly fit)
NEGATIVES = 4  # hard negatives mined per judged pair
MARGIN = 0.05  # relative margin: a candidate within 5% of the positive's score is not used as a negative
RANGE_MAX = 50  # negatives come from the bi-encoder's top 50: what a re-ranker at depth 50 sees
INFO_FILE = "searchkit.json"


def training_pairs(dataset: Dataset) -> list[tuple[str, str]]:
    """Return the judged ``(query, document text)`` pairs of ``dataset`` (grade > 0); refuse test judgments."""
    if not isinstance(dataset, Dataset):
        raise InputError(f"give a searchkit Dataset with training judgments, got {type(dataset).__name__}")
    if getattr(dataset, "split", None) == "test":
        raise DatasetError(
            f"{dataset.name} holds test judgments (split='test'): train on the training split, e.g. "
            "load_beir(path, split='train'), and keep the test queries for measuring"
        )
    c = dataset.corpus
    texts = dict(zip(c.ids, (f"{t} {x}".strip() for t, x in zip(c.titles, c.texts))))
    pairs = [
        (dataset.queries[q], texts[d])
        for q in sorted(dataset.judged_queries())
        for d, grade in sorted(dataset.qrels[q].items())
        if grade > 0 and d in texts
    ]
    if not pairs:
        raise DatasetError(
            f"{dataset.name} has no judged training queries (a query with a relevant document in the corpus): "
            "give a dataset with qrels, e.g. load_beir(path, split='train')"
        )
    return pairs


def _mined(pairs: list[tuple[str, str]], corpus: list[str], source: str, progress: bool):
    """Return a ``datasets.Dataset`` of (query, text, label): the pairs as 1, mined hard negatives as 0."""
    from datasets import Dataset as HFDataset
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import mine_hard_negatives

    bi = SentenceTransformer(source, device="cpu")
    data = HFDataset.from_dict({"query": [q for q, _ in pairs], "text": [t for _, t in pairs]})
    return mine_hard_negatives(
        data, bi, corpus=corpus, range_max=min(RANGE_MAX, len(corpus) - 1), relative_margin=MARGIN,
        num_negatives=NEGATIVES, sampling_strategy="top", output_format="labeled-pair", batch_size=64,
        verbose=progress,
    )  # fmt: skip


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
    progress: bool = True,
) -> dict:  # fmt: skip
    """Train a cross-encoder on the judged pairs of ``dataset`` and mined negatives; save it to ``out``; return info."""
    path = _check_args(out, epochs, batch_size, max_steps, seed)
    pairs = training_pairs(dataset)
    from sentence_transformers.cross_encoder import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers import set_seed
    from transformers.utils import logging as hf_logging

    t0 = time.perf_counter()
    hf_logging.set_verbosity_error()  # not the "newly initialized classifier" warning: the head is what we train
    _, source = resolve_model(DEFAULT_MODEL)
    c = dataset.corpus
    train = _mined(pairs, [f"{t} {x}".strip() for t, x in zip(c.titles, c.texts)], source, progress)
    set_seed(seed)
    model = CrossEncoder(source, num_labels=1, max_length=MAX_LENGTH, device="cpu")
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
        "pairs": len(pairs), "negatives": int(len(labels) - sum(labels)), "steps": int(result.global_step),
        "epochs": epochs, "batch_size": batch_size, "max_steps": max_steps, "seed": seed, "max_length": MAX_LENGTH,
        "loss": round(float(result.training_loss), 4), "seconds": 0.0,
    }  # fmt: skip
    with atomic_folder(path) as tmp:
        model.save_pretrained(str(tmp))
        info["seconds"] = round(time.perf_counter() - t0, 1)
        (tmp / INFO_FILE).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info
