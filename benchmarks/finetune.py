"""Fine-tuning benchmark: the base all-MiniLM-L6-v2 against a fine-tuned copy, on queries training never saw.

    python benchmarks/finetune.py --dataset scifact [--model data/cache/models/scifact-bi]   # train on train, score test
    python benchmarks/finetune.py --dataset pydocs --folds 5    # k-fold: train on k-1 folds' queries, score the rest
    python benchmarks/finetune.py --dataset mydocs              # unlabeled: inverse cloze + headings, judged queries

Prints nDCG@10, Recall@100 and MRR@10 (and hit@10) with 95% bootstrap CIs, the paired difference tuned - base,
training seconds and samples/s, and the goal lines of issue 26. ``--model DIR`` scores a model already trained
(SciFact, mydocs) instead of training one. Dense exact search (Flat) everywhere; hybrid is RRF with BM25.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from searchkit.config import scifact_dir  # noqa: E402
from searchkit.corpus.datasets import Dataset, load_beir  # noqa: E402
from searchkit.corpus.mydocs import MYDOCS_DIR, load_mydocs_judged  # noqa: E402
from searchkit.corpus.pydocs import load_pydocs  # noqa: E402
from searchkit.encoders.embed import Embedder  # noqa: E402
from searchkit.encoders.training import finetune, record_held_out  # noqa: E402
from searchkit.engine import SearchEngine  # noqa: E402
from searchkit.measure.report import format_table  # noqa: E402
from searchkit.relevance.evaluate import System, evaluate_systems  # noqa: E402
from searchkit.relevance.metrics import bootstrap_ci, paired_bootstrap  # noqa: E402

METRICS = ("ndcg@10", "recall@100", "mrr@10", "success@10")
GOALS = {"scifact": ("ndcg@10", 0.70), "pydocs": ("success@10", 0.75), "mydocs": ("ndcg@10", None)}


BACKENDS = {"base": "torch", "tuned": "torch"}  # --base-backend, --backend


def _engine(dataset: Dataset, model: str | None, backend: str) -> SearchEngine:
    return SearchEngine.build(dataset.corpus, Embedder(model, backend=backend), progress=True)


def score(dataset: Dataset, models: dict[str, str | None], hybrid: bool = False, queries=None):
    """Return the Report of dense (and hybrid RRF) search with each of ``models`` on ``dataset``'s judged queries."""
    systems = []
    for name, model in models.items():
        engine = _engine(dataset, model, BACKENDS.get(name, BACKENDS["tuned"]))
        systems.append(System(f"dense {name}", engine, "dense"))
        if hybrid:
            systems.append(System(f"hybrid {name}", engine, "hybrid", "rrf"))
    return evaluate_systems(systems, dataset, METRICS, k=100, queries=queries, batch_size=32)


def lines(report, info: dict | None, goal: tuple[str, float | None], name: str) -> dict:
    """Print the table, the paired differences and the goal line; return held-out figures for searchkit.json."""
    print(report.table(latency=False))
    for m in METRICS:
        print(f"dense tuned - base, {m}: {report.compare('dense tuned', 'dense base', m)}")
    if info:
        print(f"training: {info['seconds']:.0f} s ({info['mining_seconds']:.0f} s mining), {info['steps']} steps, "
              f"{info['samples_per_s']:.2f} samples/s, {info['pairs']} pairs ({info['regime']}); load {os.getloadavg()[0]:.1f}")  # fmt: skip
    metric, target = goal
    got = report["dense tuned"].estimates[metric].mean
    base = report["dense base"].estimates[metric].mean
    if target is None:
        print(f"goal (never worse than the base model): {metric} {base:.3f} -> {got:.3f}: "
              f"{'met' if got >= base else 'NOT met'}")  # fmt: skip
    else:
        print(f"goal {metric} >= {target}: {base:.3f} -> {got:.3f}: {'met' if got >= target else 'NOT met'}")
    return {name: {m: round(report["dense tuned"].estimates[m].mean, 4) for m in METRICS}}


def run_scifact(a) -> None:
    root = Path(a.scifact)
    test = load_beir(root, split="test")
    info, model = None, a.model
    if model is None:
        model = a.out or tempfile.mkdtemp(prefix="scifact-bi-") + "/model"
        info = finetune(f"beir:{root}", model, epochs=a.epochs, batch_size=a.batch_size, max_steps=a.max_steps,
                        seed=a.seed, max_seq_length=a.max_seq_length).info  # fmt: skip
    report = score(test, {"base": None, "tuned": model}, hybrid=True)
    from searchkit.encoders.model_files import tuned_info

    figures = lines(report, info or tuned_info(model), GOALS["scifact"], "scifact test")
    print(f"hybrid RRF tuned: ndcg@10 {report['hybrid tuned'].estimates['ndcg@10']} (goal >= 0.76)")
    if tuned_info(model):
        record_held_out(model, figures)


def run_pydocs(a) -> None:
    """k-fold: for each fold, train on the other folds' queries and score the held-out ones; pool per query."""
    ds = load_pydocs()
    qids = sorted(ds.judged_queries())
    parts = np.array_split(np.random.default_rng(a.seed).permutation(len(qids)), a.folds)
    base = score(ds, {"base": None})
    tuned = {m: np.empty(len(qids)) for m in METRICS}
    seconds = 0.0
    for f, test in enumerate(parts):
        held = [qids[i] for i in test]
        train = [q for q in qids if q not in set(held)]
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            finetune(ds, Path(tmp) / "m", qids=train, epochs=a.epochs, batch_size=a.batch_size, max_steps=a.max_steps,
                     seed=a.seed, max_seq_length=a.max_seq_length, progress=False)  # fmt: skip
            seconds += time.perf_counter() - t0
            rep = score(ds, {"fold": str(Path(tmp) / "m")}, queries=sorted(held))
        for m in METRICS:
            vals = dict(zip(rep.queries, rep["dense fold"].values[m]))
            tuned[m][test] = [vals[q] for q in held]
        print(f"fold {f + 1}/{a.folds}: {len(train)} training queries, held-out ndcg@10 {rep['dense fold'].estimates['ndcg@10']}")
    rows = []
    for m in METRICS:
        b = base["dense base"].values[m]
        rows.append({"metric": m, "base": str(bootstrap_ci(b)), "tuned (held-out)": str(bootstrap_ci(tuned[m])),
                     "tuned - base": str(paired_bootstrap(tuned[m], b))})  # fmt: skip
    print(format_table(rows))
    print(f"training: {seconds:.0f} s over {a.folds} folds; load {os.getloadavg()[0]:.1f}")
    print(f"goal hit@10 >= 0.75: {base['dense base'].values['success@10'].mean():.3f} -> {tuned['success@10'].mean():.3f}")
    print(f"goal ndcg@10 >= 0.38: {base['dense base'].values['ndcg@10'].mean():.3f} -> {tuned['ndcg@10'].mean():.3f}")


def run_mydocs(a) -> None:
    test = load_mydocs_judged()
    info, model = None, a.model
    if model is None:
        model = a.out or tempfile.mkdtemp(prefix="mydocs-bi-") + "/model"
        info = finetune(str(MYDOCS_DIR), model, epochs=a.epochs, batch_size=a.batch_size, max_steps=a.max_steps,
                        seed=a.seed, max_seq_length=a.max_seq_length).info  # fmt: skip
    lines(score(test, {"base": None, "tuned": model}, hybrid=True), info, GOALS["mydocs"], "mydocs judged")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="scifact", choices=("scifact", "pydocs", "mydocs"))
    p.add_argument("--scifact", default=str(scifact_dir()), help="SciFact's BEIR folder (with qrels/train.tsv)")
    p.add_argument("--model", default=None, help="score this fine-tuned folder instead of training one")
    p.add_argument("--out", default=None, help="keep the trained model here (default: a temporary folder)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-seq-length", type=int, default=None, help="cut training texts to this many word pieces")
    p.add_argument("--folds", type=int, default=5, help="pydocs: cross-validation folds (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="torch", help="encoder backend of the tuned model (default torch)")
    p.add_argument("--base-backend", default="torch", help="encoder backend of the base model (default torch)")
    a = p.parse_args(argv)
    BACKENDS.update(base=a.base_backend, tuned=a.backend)
    print(f"encoders: base {a.base_backend}, tuned {a.backend}; load {os.getloadavg()[0]:.1f}")
    {"scifact": run_scifact, "pydocs": run_pydocs, "mydocs": run_mydocs}[a.dataset](a)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
