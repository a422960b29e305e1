"""Choose hybrid fusion (method and weights) from judged queries by k-fold cross-validation.

Every judged query is answered once by BM25 and once by dense search (``depth`` results each); each
candidate :class:`~searchkit.engine.SearchSettings` then fuses those lists offline with the engine's own
hybrid code (:meth:`SearchSettings.fuse`), so a whole grid costs one pass of the
queries. Cross-validation picks the best config on k-1 folds and scores it on the held-out fold; the
held-out scores, concatenated, estimate what the tuned fusion does on queries it never saw. The config
shipped for the built-in corpus lives in ``data/pydocs/fusion.json``; other corpora keep the honest
default (RRF, k=60, equal weights) until tuned with ``python -m searchkit tune-fusion --corpus beir:DIR``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from searchkit.config import DATA_DIR
from searchkit.corpus.datasets import Dataset
from searchkit.engine import SearchSettings
from searchkit.errors import InputError
from searchkit.measure.report import format_table
from searchkit.relevance.metrics import Comparison, Estimate, bootstrap_ci, ndcg, paired_bootstrap
from searchkit.storage import write_text_atomic

PYDOCS_FUSION = DATA_DIR / "pydocs" / "fusion.json"
BM25_WEIGHTS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
RRF_KS: tuple[int, ...] = (10, 30, 60, 100)


DEFAULT_FUSION = SearchSettings()  # the honest default for a corpus without judged queries: RRF k=60, equal weights


def candidates() -> list[SearchSettings]:
    """Return the grid searched by :func:`tune_fusion`: RRF over several k, min-max and z-score, bm25 weights 0.05-0.95."""
    grid = [SearchSettings(fusion="rrf", weights=(1.0, 1.0), rrf_k=k) for k in RRF_KS]
    for w in BM25_WEIGHTS:
        grid += [SearchSettings(fusion="rrf", weights=(w, 1 - w), rrf_k=k) for k in RRF_KS]
        grid += [SearchSettings(fusion=m, weights=(w, 1 - w)) for m in ("minmax", "zscore")]  # type: ignore[arg-type]
    return grid


def apply_fusion(engine, config: SearchSettings) -> None:
    """Make ``config``'s fusion the hybrid fusion of ``engine``'s default settings (calls that pass no settings)."""
    engine.defaults = engine.defaults.with_fusion_of(config)


def load_fusion(path: str | Path = PYDOCS_FUSION) -> SearchSettings:
    """Read a fusion config written by :func:`save_fusion` (the file's ``"config"`` object)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read the fusion config {path} ({e}): rewrite it with python -m searchkit tune-fusion --write") from None
    return SearchSettings.from_dict(data.get("config") if isinstance(data, dict) else data)


def fusion_for(corpus: str) -> SearchSettings:
    """Return the hybrid fusion shipped for ``corpus``: the tuned one for ``"pydocs"``, else :data:`DEFAULT_FUSION`."""
    if corpus == "pydocs" and PYDOCS_FUSION.is_file():
        return load_fusion(PYDOCS_FUSION)
    return DEFAULT_FUSION


@dataclass
class TuningResult:
    """What :func:`tune_fusion` found: the config fit on all queries and the held-out cross-validation."""

    dataset: str
    qids: list[str]
    best: SearchSettings
    folds: list[dict]
    heldout: np.ndarray  # per-query nDCG@10 of the config chosen without that query's fold
    baselines: dict[str, np.ndarray] = field(default_factory=dict)  # bm25, dense, hybrid-default, hybrid-tuned

    def estimate(self, name: str = "held-out") -> Estimate:
        """Return mean nDCG@10 with a 95% bootstrap CI for ``"held-out"`` or one of the baselines."""
        return bootstrap_ci(self.heldout if name == "held-out" else self.baselines[name])

    def compare(self, a: str, b: str) -> Comparison:
        """Paired bootstrap of ``a`` minus ``b`` (``"held-out"`` or baseline names) in nDCG@10."""
        pick = {"held-out": self.heldout, **self.baselines}
        return paired_bootstrap(pick[a], pick[b])

    def fold_table(self) -> str:
        """Return a text table: per fold the chosen config, its train and held-out nDCG@10."""
        rows = [{"fold": f["fold"], "queries": f["n"], "chosen": f["chosen"], "train nDCG@10": f["train"],
                 "held-out nDCG@10": f["heldout"]} for f in self.folds]  # fmt: skip
        return format_table(rows)

    def table(self) -> str:
        """Return a text table of nDCG@10 with 95% CIs for the baselines and the held-out tuned fusion."""
        names = [*self.baselines, "held-out"]
        return format_table([{"system": n, "nDCG@10 [95% CI]": str(self.estimate(n))} for n in names])

    def to_dict(self) -> dict:
        """Return a JSON-ready summary (config, folds, estimates) for ``data/pydocs/fusion.json``."""
        est = {n: asdict(self.estimate(n)) for n in [*self.baselines, "held-out"]}
        return {"config": self.best.to_dict(), "dataset": self.dataset, "queries": len(self.qids),
                "folds": self.folds, "ndcg_at_10": est}  # fmt: skip


def _rank_lists(engine, dataset: Dataset, depth: int) -> tuple[list[str], list, list]:
    """Answer every judged query with BM25 and dense search; return qids and both lists per query."""
    judged = dataset.judged_queries()
    qids = sorted(judged)
    texts = [judged[q] for q in qids]
    bm25 = [[(h.id, h.score) for h in hits] for hits in engine.search_many(texts, depth, mode="bm25")]
    dense = []
    for s in range(0, len(texts), 64):
        dense += [[(h.id, h.score) for h in hits] for hits in engine.search_many(texts[s : s + 64], depth, mode="dense")]
    return qids, bm25, dense


def _scores(configs: Sequence[SearchSettings], qids, bm25, dense, qrels) -> np.ndarray:
    """Return a ``(len(configs), len(qids))`` array of per-query nDCG@10 of each config, fused as the engine fuses."""
    out = np.empty((len(configs), len(qids)))
    for c, cfg in enumerate(configs):
        for i, q in enumerate(qids):
            fused = cfg.fuse([bm25[i], dense[i]], limit=10)
            out[c, i] = ndcg([d for d, _ in fused], qrels.get(q, {}), k=10)
    return out


def tune_fusion(engine, dataset: Dataset, folds: int = 5, seed: int = 0, depth: int = 100) -> TuningResult:
    """Pick hybrid fusion for ``engine`` on ``dataset``'s judged queries by ``folds``-fold cross-validation."""
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise InputError(f"folds must be an integer of at least 2 (5 is usual), got {folds!r}")
    if engine.bm25 is None:
        raise InputError("tuning fusion needs an engine with BM25: build it with bm25=True")
    qids, bm25, dense = _rank_lists(engine, dataset, depth)
    if len(qids) < folds:
        raise InputError(f"{dataset.name!r} has {len(qids)} judged queries, fewer than {folds} folds: use fewer folds")
    grid = [c.with_(hybrid_depth=depth) for c in candidates()]
    scores = _scores([DEFAULT_FUSION, *grid], qids, bm25, dense, dataset.qrels)
    default, grid_scores = scores[0], scores[1:]
    heldout = np.empty(len(qids))
    parts = np.array_split(np.random.default_rng(seed).permutation(len(qids)), folds)
    fold_rows = []
    for f, test in enumerate(parts):
        train = np.setdiff1d(np.arange(len(qids)), test)
        pick = int(np.argmax(grid_scores[:, train].mean(axis=1)))
        heldout[test] = grid_scores[pick, test]
        fold_rows.append({"fold": f + 1, "n": int(test.size), "chosen": str(grid[pick]),
                          "train": float(grid_scores[pick, train].mean()), "heldout": float(grid_scores[pick, test].mean())})  # fmt: skip
    best = int(np.argmax(grid_scores.mean(axis=1)))
    per_q = lambda run: np.array([ndcg([d for d, _ in r[:10]], dataset.qrels.get(q, {}), k=10) for q, r in zip(qids, run)])  # noqa: E731
    baselines = {"bm25": per_q(bm25), "dense": per_q(dense), "hybrid-default": default, "hybrid-tuned (fit on all)": grid_scores[best]}
    return TuningResult(dataset.name, qids, grid[best], fold_rows, heldout, baselines)


def save_fusion(result: TuningResult, path: str | Path = PYDOCS_FUSION, **extra) -> Path:
    """Write ``result`` (config, folds, estimates, plus ``extra`` keys) to ``path`` atomically; return the path."""
    return write_text_atomic(path, json.dumps({**result.to_dict(), **extra}, indent=2) + "\n")
