"""Fine-tune the bi-encoder (all-MiniLM-L6-v2 by default) on training pairs, with sentence-transformers' trainer.

``finetune(spec_or_dataset, out)`` makes pairs (:mod:`searchkit.encoders.pairs`), mines hard negatives, trains with
``SentenceTransformerTrainer`` and ``MultipleNegativesRankingLoss`` (optionally inside ``MatryoshkaLoss``), and
writes a normal sentence-transformers folder plus ``searchkit.json`` atomically: an interrupted run leaves no
folder. The folder is then a model like any other (``Embedder(model=DIR)``, ``--model DIR`` on every command).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from searchkit.config import cache_dir
from searchkit.corpus.datasets import Dataset
from searchkit.encoders.model_files import model_sha256, tuned_info
from searchkit.encoders.pairs import RELATIVE_MARGIN, Pairs, make_pairs, mine_negatives, training_dataset
from searchkit.errors import InputError
from searchkit.storage import atomic_folder, write_text_atomic
from searchkit.validation import check_positive_int

INFO = "searchkit.json"
MATRYOSHKA_DIMS = (384, 256, 128, 64, 32)
LEARNING_RATE = 5e-5


@dataclass
class FinetuneResult:
    """A fine-tuned model folder and what its ``searchkit.json`` says about the run."""

    path: Path
    info: dict

    def __repr__(self) -> str:
        i = self.info
        return (f"FinetuneResult({str(self.path)!r}: {i['regime']}, {i['pairs']} pairs, {i['steps']} steps, "
                f"{i['seconds']:.0f} s, loss {i.get('loss') or float('nan'):.3f})")  # fmt: skip

    def table(self) -> str:
        """Return the run's settings and figures as a two-column text table."""
        from searchkit.measure.report import format_table

        rows = [{"field": k, "value": json.dumps(v) if isinstance(v, (dict, list)) else v} for k, v in self.info.items()]
        return format_table(rows, ["field", "value"])


def check_output(out: str | Path, overwrite: bool = False) -> Path:
    """Return ``out`` as a Path if a model may be written there; raise InputError naming it and the fix if not."""
    out = Path(out).expanduser()
    if not out.exists():
        return out
    if not out.is_dir() or not (out / "config.json").is_file():
        raise InputError(f"--out {out} exists and is not a model folder: choose a new folder (it is created) "
                         "or remove that one first")  # fmt: skip
    if not overwrite:
        raise InputError(f"--out {out} already holds a model: pass --overwrite (overwrite=True) to replace it, "
                         "or choose a new folder")  # fmt: skip
    return out


def check_numbers(epochs: int, batch_size: int, max_steps: int | None, seed: int) -> None:
    """Raise InputError for epochs, batch size or max steps below 1, or a negative seed, naming the value and fix."""
    check_positive_int("--epochs", epochs, hint="passes over the training pairs, e.g. --epochs 1")
    check_positive_int("--batch-size", batch_size, minimum=2, hint="pairs per step (in-batch negatives), e.g. 32")
    check_positive_int("--max-steps", max_steps, none_ok=True, hint="leave it out to run whole epochs")
    check_positive_int("--seed", seed, minimum=0, hint="any whole number, e.g. 0")


@contextmanager
def _output_folder(out: Path) -> Iterator[Path]:
    """Yield a temp folder that becomes ``out`` on success (replacing a model there); nothing is left on error."""
    if not out.exists():
        with atomic_folder(out) as tmp:
            yield tmp
        return
    staged = out.parent / f".{out.name}.new-{os.getpid()}"
    with atomic_folder(staged) as tmp:
        yield tmp
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    out.rename(old)
    staged.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def _progress_callback(total: int):
    """Return a trainer callback that shows one tqdm bar with the running loss."""
    from tqdm.auto import tqdm
    from transformers import TrainerCallback

    class LossBar(TrainerCallback):
        def on_train_begin(self, args, state, control, **kw):
            self.bar = tqdm(total=state.max_steps or total, desc="fine-tuning", unit="step")

        def on_step_end(self, args, state, control, **kw):
            self.bar.update(state.global_step - self.bar.n)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                self.bar.set_postfix(loss=f"{logs['loss']:.4f}")

        def on_train_end(self, args, state, control, **kw):
            self.bar.close()

    return LossBar()


def _loss(model, matryoshka: bool):
    from sentence_transformers.losses import MatryoshkaLoss, MultipleNegativesRankingLoss

    loss = MultipleNegativesRankingLoss(model)
    dims = [d for d in MATRYOSHKA_DIMS if d <= model.get_embedding_dimension()]
    return MatryoshkaLoss(model, loss, matryoshka_dims=dims) if matryoshka else loss


def train_pairs(model, pairs: Pairs, work: Path, *, epochs: int, batch_size: int, max_steps: int | None, seed: int,
                matryoshka: bool = False, learning_rate: float = LEARNING_RATE, progress: bool = True) -> dict:  # fmt: skip
    """Train ``model`` in place on ``pairs`` (seeded, deterministic order); return the trainer's figures."""
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers
    from transformers import set_seed
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    set_seed(seed)
    per_epoch = max(1, -(-len(pairs) // batch_size))
    total = max_steps or per_epoch * epochs
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work), num_train_epochs=epochs, max_steps=max_steps or -1, per_device_train_batch_size=batch_size,
        learning_rate=learning_rate, warmup_steps=int(0.1 * total), seed=seed, data_seed=seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,  # one query's other positives are never its in-batch negatives
        save_strategy="no", report_to="none", logging_steps=max(1, min(10, total // 10)), disable_tqdm=True,
        dataloader_num_workers=0, use_cpu=True,
    )  # fmt: skip
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=pairs.to_hf(), loss=_loss(model, matryoshka),
                                         callbacks=[_progress_callback(total)] if progress else [])  # fmt: skip
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # the loss shows on the bar, not as printed dicts
    out = trainer.train()
    return {"steps": int(trainer.state.global_step), "loss": float(out.training_loss),
            "samples_per_s": float(out.metrics.get("train_samples_per_second", 0.0))}  # fmt: skip


def _dataset(data: str | Dataset) -> tuple[Dataset, str]:
    if isinstance(data, Dataset):
        return data, data.name
    return training_dataset(data), str(data)


def finetune(
    data: str | Dataset, out: str | Path, *, model: str | None = None, epochs: int = 1, batch_size: int = 32,
    max_steps: int | None = None, seed: int = 0, matryoshka: bool = False, hard_negatives: int = 1,
    qids: Sequence[str] | None = None, overwrite: bool = False, learning_rate: float = LEARNING_RATE,
    max_seq_length: int | None = None, progress: bool = True,
) -> FinetuneResult:  # fmt: skip
    """Fine-tune ``model`` (default all-MiniLM-L6-v2) on ``data`` and save it to ``out``; return the result.

    ``data``: a corpus spec (``beir:DIR`` trains on its ``qrels/train.tsv``, ``pydocs`` on its judged queries,
    a folder / ``.jsonl`` / ``.csv`` on inverse-cloze and heading pairs) or a Dataset; ``qids`` limits judged
    pairs to those queries (cross-validation). ``hard_negatives`` per pair are mined by the base model (0: in-batch
    negatives only). ``max_seq_length`` cuts training texts shorter (faster steps; the saved model reads
    its usual length). ``out`` is written whole or not at all; a model already there is replaced only if ``overwrite``.
    """
    from searchkit.encoders.models import load_model

    check_numbers(epochs, batch_size, max_steps, seed)
    check_positive_int("hard_negatives", hard_negatives, minimum=0, hint="0 for in-batch negatives only, e.g. 1")
    out = check_output(out, overwrite)
    dataset, spec = _dataset(data)
    pairs = make_pairs(dataset, seed=seed, qids=qids)
    st, model_id = load_model(model, backend="torch")
    base_length = st.max_seq_length
    t0 = time.perf_counter()
    if hard_negatives:
        from searchkit.encoders.embed import Embedder

        corpus = dataset.corpus.embedding_texts() if pairs.regime == "judged" else sorted(set(pairs.positives))
        vectors = Embedder(model, backend="torch").encode_cached(corpus)  # searchkit's cache: embedded once
        mining = cache_dir() / "mining" / _model_key(model)
        pairs = mine_negatives(pairs, st, corpus, hard_negatives, cache_folder=str(mining), corpus_vectors=vectors)
    if max_seq_length is not None:
        st.max_seq_length = check_positive_int("max_seq_length", max_seq_length, hint="word pieces, e.g. 128")
    mined_s = time.perf_counter() - t0
    with _output_folder(out) as tmp, tempfile.TemporaryDirectory(prefix="searchkit-train-") as work:
        figures = train_pairs(st, pairs, Path(work), epochs=epochs, batch_size=batch_size, max_steps=max_steps,
                              seed=seed, matryoshka=matryoshka, learning_rate=learning_rate, progress=progress)  # fmt: skip
        st.max_seq_length = base_length
        st.save(str(tmp))
        info = {
            "format": 1, "base_model": model_id, "data": spec, "regime": pairs.regime, "pairs": len(pairs),
            "queries": pairs.queries, "hard_negatives": hard_negatives, "relative_margin": RELATIVE_MARGIN,
            "epochs": epochs, "batch_size": batch_size, "max_steps": max_steps, "steps": figures["steps"],
            "learning_rate": learning_rate, "seed": seed, "max_seq_length": max_seq_length or base_length,
            "matryoshka_dims": list(MATRYOSHKA_DIMS) if matryoshka else None, "loss": figures["loss"],
            "mining_seconds": round(mined_s, 1), "seconds": round(time.perf_counter() - t0, 1),
            "samples_per_s": round(figures["samples_per_s"], 2), "held_out": None,
        }  # fmt: skip
        write_text_atomic(tmp / INFO, json.dumps(info, indent=2) + "\n")
    return FinetuneResult(out, info)


def _model_key(model: str | None) -> str:
    """Return a short key of the model's content (mined negatives are cached per model)."""
    from searchkit.encoders.models import resolve_model

    source = resolve_model(model)[1]
    return model_sha256(source)[:16] if Path(source).is_dir() else source.replace("/", "--")


def record_held_out(folder: str | Path, figures: dict) -> dict:
    """Add held-out ``figures`` (e.g. ``{"scifact test": {"ndcg@10": 0.70}}``) to ``folder``'s searchkit.json."""
    info = tuned_info(folder)
    if info is None:
        raise InputError(f"{folder} has no {INFO}: record held-out figures only for a folder written by finetune")
    info["held_out"] = {**(info.get("held_out") or {}), **figures}
    write_text_atomic(Path(folder) / INFO, json.dumps(info, indent=2) + "\n")
    return info
