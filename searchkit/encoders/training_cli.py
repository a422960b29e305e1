"""``python -m searchkit finetune``: the command's flags, checked before any model loads, and its run."""

from __future__ import annotations

import argparse
import json

from searchkit.errors import InputError


def add_finetune_parser(sub) -> argparse.ArgumentParser:
    """Add the ``finetune`` command to the subparsers ``sub``; return its parser."""
    f = sub.add_parser("finetune", help="fine-tune the embedding model (or train a re-ranker) on a corpus")
    f.add_argument("--corpus", required=True,
                   help="'beir:DIR' (trains on qrels/train.tsv, never test), 'pydocs' (its judged queries), or a "
                        "folder, .jsonl or .csv of your documents (inverse-cloze and heading pairs)")  # fmt: skip
    f.add_argument("--out", required=True, help="folder for the trained model (written whole or not at all)")
    f.add_argument("--model", default=None, help="the model to start from (default: all-MiniLM-L6-v2)")
    f.add_argument("--epochs", type=int, default=1, help="passes over the training pairs (default: 1)")
    f.add_argument("--batch-size", type=int, default=32, help="pairs per step; more means more in-batch negatives (default: 32)")
    f.add_argument("--max-steps", type=int, default=None, help="stop after this many steps (default: whole epochs)")
    f.add_argument("--seed", type=int, default=0, help="seed of the pair order and initialization (default: 0)")
    f.add_argument("--hard-negatives", type=int, default=1, help="mined hard negatives per pair; 0: in-batch only (default: 1)")
    f.add_argument("--matryoshka", action="store_true", help="train with MatryoshkaLoss (vectors cut to 256/128/64/32 dims stay useful)")
    f.add_argument("--cross-encoder", action="store_true", help="train a cross-encoder re-ranker instead of the bi-encoder")
    f.add_argument("--overwrite", action="store_true", help="replace a model already in --out")
    f.set_defaults(func=cmd_finetune)
    return f


def cmd_finetune(args: argparse.Namespace) -> int:
    """Fine-tune on ``--corpus`` and save the model to ``--out``; print what searchkit.json records."""
    from searchkit.encoders.training import check_numbers, check_output, finetune

    check_numbers(args.epochs, args.batch_size, args.max_steps, args.seed)  # every flag before any model loads
    out = check_output(args.out, args.overwrite)
    if args.cross_encoder:
        return _cross_encoder(args, out)
    if args.hard_negatives < 0:
        raise InputError(f"--hard-negatives must be 0 or more, got {args.hard_negatives} (0: in-batch negatives only)")
    result = finetune(args.corpus, out, model=args.model, epochs=args.epochs, batch_size=args.batch_size,
                      max_steps=args.max_steps, seed=args.seed, matryoshka=args.matryoshka,
                      hard_negatives=args.hard_negatives, overwrite=args.overwrite)  # fmt: skip
    print(json.dumps(result.info, indent=2))
    print(f"saved the fine-tuned model to {result.path}: use it with --model {result.path}")
    return 0


def _cross_encoder(args: argparse.Namespace, out) -> int:
    """Train the cross-encoder re-ranker (searchkit.encoders.cross_training) when this version has it."""
    try:
        from searchkit.encoders.cross_training import train_cross_encoder
    except ModuleNotFoundError as e:
        if e.name != "searchkit.encoders.cross_training":
            raise
        raise InputError("cross-encoder training is not available in this version: train the bi-encoder "
                         "(leave out --cross-encoder)") from None  # fmt: skip
    from searchkit.encoders.pairs import training_dataset

    info = train_cross_encoder(training_dataset(args.corpus), out, epochs=args.epochs, batch_size=args.batch_size,
                               max_steps=args.max_steps, seed=args.seed, progress=True)  # fmt: skip
    print(json.dumps(info, indent=2, default=str))
    print(f"saved the cross-encoder to {out}")
    return 0
