"""Choose a faiss index under a budget: the cheapest candidate that meets memory, recall and latency targets.

What autofaiss does, on searchkit's measuring tools: each candidate's bytes per code come from faiss
before anything is built (``faiss.contrib.factory_tools.get_code_size``) and the memory calculator
(:func:`searchkit.index.codes.memory_estimate`); candidates that fit are built on a sample, their search
parameter is explored upward along ``faiss.ParameterSpace``'s values until recall@k reaches the target,
and single-query latency is timed there (:mod:`searchkit.measure.bench`). The answer is the candidate with the
smallest memory that meets every target, with a table saying why each other one lost; when nothing
fits, the message names which target to relax and by how much.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field

import faiss
import numpy as np
from faiss.contrib.factory_tools import get_code_size

from searchkit.corpus.loaders import format_size
from searchkit.errors import InputError
from searchkit.index.codes import build_index, memory_estimate
from searchkit.index.sizing import IndexSpec, suggest_nlist
from searchkit.index.vector import VectorIndex
from searchkit.measure.bench import faiss_threads, ground_truth, index_bytes, recall_at_k, time_single
from searchkit.measure.report import format_table
from searchkit.validation import as_matrix

SAMPLE = 20_000  # vectors measured; at or below this the measurement is on the whole set
QUERIES = 200  # held-out query vectors when none are given
_PARAM = {"nprobe": "nprobe", "efSearch": "ef_search"}
FAR = 4  # candidates whose codes alone exceed FAR x the memory budget are not built


def candidate_factories(n: int, dim: int) -> list[str]:
    """Return the factory strings worth trying for ``n`` vectors of dimension ``dim``, largest codes first."""
    out = ["Flat", "SQfp16", "SQ8", "SQ4"]
    out += [f"PQ{dim // 8}"] if dim % 8 == 0 else []
    out += ["HNSW32", "HNSW32,SQ8"]
    if n >= 39 * 2:
        nlist = suggest_nlist(n)
        out += [f"IVF{nlist},Flat", f"IVF{nlist},SQ8"] + ([f"IVF{nlist},PQ{dim // 8}"] if dim % 8 == 0 else [])
    return out


def _sized_for(factory: str, n: int) -> str:
    """Return ``factory`` with its IVF list count sized for ``n`` vectors (the sample may be smaller than the set)."""
    if not factory.startswith("IVF"):
        return factory
    return f"IVF{suggest_nlist(n)},{factory.split(',', 1)[1]}"


@dataclass
class Candidate:
    """One row of the table: a factory, its search parameter, estimated memory for all vectors, measured quality."""

    factory: str
    params: str = "-"
    memory: int = 0  # estimated bytes of the index holding every vector
    recall: float = math.nan
    p99_ms: float = math.nan
    verdict: str = ""
    nprobe: int | None = None
    ef_search: int | None = None
    ok: bool = False
    misses: dict[str, float] = field(default_factory=dict)  # target -> what this candidate reaches instead

    def row(self) -> dict:
        """Return the row for :func:`searchkit.measure.report.format_table`."""
        shown = lambda x, digits: "-" if math.isnan(x) else f"{x:.{digits}f}"  # noqa: E731
        return {"index": self.factory, "params": self.params, "memory": format_size(self.memory),
                "recall@10": shown(self.recall, 3), "p99_ms": shown(self.p99_ms, 2), "verdict": self.verdict}  # fmt: skip


@dataclass
class Choice:
    """The chooser's answer: the chosen candidate (or None), every candidate with its verdict, and advice."""

    n: int
    sampled: int
    max_memory: int
    min_recall: float
    max_latency_ms: float | None
    candidates: list[Candidate]
    chosen: Candidate | None
    advice: str = ""
    index: VectorIndex | None = field(default=None, repr=False)  # the measured index, when it holds every vector

    def spec(self) -> IndexSpec:
        """Return the chosen index as an :class:`IndexSpec`, or raise InputError with the advice."""
        if self.chosen is None:
            raise InputError(self.advice)
        c = self.chosen
        return IndexSpec(c.factory, ef_search=c.ef_search, nprobe=c.nprobe)

    def table(self) -> str:
        """Return every candidate with its memory, recall, latency and verdict as a text table."""
        return format_table(self.candidates)

    def __str__(self) -> str:
        head = (f"{self.n:,} vectors ({self.sampled:,} measured); targets: memory <= {format_size(self.max_memory)}, "
                f"recall@10 >= {self.min_recall}" + (f", p99 <= {self.max_latency_ms} ms" if self.max_latency_ms else ""))  # fmt: skip
        tail = f"chosen: {self.chosen.factory} ({self.chosen.params})" if self.chosen else f"nothing fits: {self.advice}"
        return f"{head}\n{self.table()}\n{tail}"


def _check_targets(max_memory: int, min_recall: float, max_latency_ms: float | None) -> None:
    if isinstance(max_memory, bool) or not isinstance(max_memory, (int, np.integer)) or max_memory <= 0:
        raise InputError(f"max_memory must be a positive number of bytes, got {max_memory!r}: e.g. parse_size('2GB')")
    if not 0 < min_recall <= 1:
        raise InputError(f"min_recall must be in (0, 1], got {min_recall!r}: e.g. 0.95")
    if max_latency_ms is not None and not max_latency_ms > 0:
        raise InputError(f"max_latency_ms must be positive, got {max_latency_ms!r}: e.g. 10, or leave it out")


def _param_values(index: VectorIndex) -> tuple[str | None, list[int]]:
    """Return the search parameter of ``index`` and the values faiss.ParameterSpace explores for it, ascending."""
    ps = faiss.ParameterSpace()
    ps.initialize(faiss.downcast_index(index.index.index))
    for i in range(ps.parameter_ranges.size()):
        pr = ps.parameter_ranges.at(i)
        if pr.name in _PARAM:
            values = sorted({int(v) for v in faiss.vector_to_array(pr.values)})
            if pr.name == "nprobe":  # up to every list: exhaustive search is the last resort
                values = sorted({v for v in values if v < (index.nlist or 0)} | {index.nlist or 1})
            return _PARAM[pr.name], values
    return None, [0]


def _measure(cand: Candidate, index: VectorIndex, xq: np.ndarray, truth: np.ndarray, k: int,
             min_recall: float, max_latency_ms: float | None) -> None:  # fmt: skip
    """Explore the candidate's search parameter upward until recall@k meets the target; time it there."""
    name, values = _param_values(index)
    for v in values:
        kw = {name: v} if name else {}
        cand.recall = recall_at_k(index.search_raw(xq, k, **kw)[1], truth, k)
        cand.params = f"{name}={v}" if name else "-"
        if name:
            setattr(cand, name, v)
        if cand.recall >= min_recall:
            break
    lat = time_single(lambda q: index.search_raw(q, k, **kw), xq[:100], warmup=5, repeats=2, per_query="min")
    cand.p99_ms = lat.p99_ms
    if cand.recall < min_recall:
        cand.misses["recall"] = cand.recall
    if max_latency_ms is not None and lat.p99_ms > max_latency_ms:
        cand.misses["latency"] = lat.p99_ms


def _try(factory: str, n: int, db: np.ndarray, ids: list[str], xq: np.ndarray, truth: np.ndarray, k: int,
         max_memory: int, min_recall: float, max_latency_ms: float | None) -> tuple[Candidate, VectorIndex | None]:  # fmt: skip
    """Size, build and measure one candidate; return it with its verdict (and the sample index if built)."""
    dim = db.shape[1]
    full = _sized_for(factory, n)
    cand = Candidate(full)
    est = memory_estimate(full, dim)
    cand.memory = est.total(n)
    codes = n * get_code_size(dim, full)
    if codes > FAR * max_memory:  # hopeless even if other targets were relaxed: not worth building
        cand.misses["memory"] = cand.memory
        cand.verdict = f"codes alone need {format_size(codes)}, over {FAR}x the budget: not measured"
        return cand, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            index = build_index(_sized_for(factory, len(db)), db, ids)
    except InputError as e:
        cand.verdict = "too few vectors to train: " + str(e).split(" (")[0].replace(f"index {full!r} ", "")
        return cand, None
    measured = index_bytes(index)  # extrapolate the sample's real size; keep the larger of the two estimates
    cand.memory = max(cand.memory, int(est.fixed + (measured - est.fixed) / len(db) * n))
    if cand.memory > max_memory:
        cand.misses["memory"] = cand.memory
    _measure(cand, index, xq, truth, k, min_recall, max_latency_ms)
    if cand.nprobe and len(db) < n:  # the same share of lists on the full index
        cand.nprobe = max(1, round(cand.nprobe * suggest_nlist(n) / suggest_nlist(len(db))))
        cand.params = f"nprobe={cand.nprobe}"
    cand.ok = not cand.misses
    cand.verdict = "; ".join(_miss_text(cand, key, max_memory, min_recall, max_latency_ms) for key in cand.misses)
    return cand, index


def _miss_text(c: Candidate, key: str, max_memory: int, min_recall: float, max_latency_ms: float | None) -> str:
    if key == "memory":
        return f"needs {format_size(c.memory)} > {format_size(max_memory)}"
    if key == "recall":
        return f"recall {c.recall:.3f} < {min_recall}" + (f" even at {c.params}" if c.params != "-" else "")
    return f"p99 {c.p99_ms:.2f} ms > {max_latency_ms} ms"


def _relax(c: Candidate, key: str, max_memory: int) -> str:
    """Return the flag change that would let ``c`` through on target ``key``."""
    if key == "memory":
        return f"--max-memory {format_size(c.memory * 1.05).replace(' ', '')} (+{format_size(c.memory * 1.05 - max_memory)})"
    if key == "recall":
        return f"--min-recall {math.floor(c.recall * 1000) / 1000}"
    return f"--max-latency-ms {math.ceil(c.p99_ms * 110) / 100}"


def _advice(cands: Sequence[Candidate], max_memory: int) -> str:
    """Name the smallest change to one target that lets a measured candidate through (or the fewest changes)."""
    measured = [c for c in cands if not math.isnan(c.recall)]
    best = {"memory": lambda c: c.memory, "recall": lambda c: -c.recall, "latency": lambda c: c.p99_ms}
    opts = []
    for key, rank in best.items():
        singles = [c for c in measured if list(c.misses) == [key]]
        if singles:
            c = min(singles, key=rank)
            opts.append(f"{_relax(c, key, max_memory)} lets {c.factory} through")
    if opts:
        return "no index meets every target; relax one: " + "; or ".join(opts)
    if measured:
        c = min(measured, key=lambda c: (len(c.misses), c.memory))
        return f"no index meets every target, and no single change is enough: {c.factory} needs " + " and ".join(
            _relax(c, key, max_memory) for key in c.misses)
    smallest = min(cands, key=lambda c: c.memory)
    return (f"no index could be measured: {smallest.factory} alone needs {format_size(smallest.memory)}; "
            f"raise --max-memory to at least that, or give more vectors to train on")  # fmt: skip


def choose_index(
    xb: np.ndarray,
    max_memory: int,
    min_recall: float = 0.95,
    max_latency_ms: float | None = None,
    k: int = 10,
    xq: np.ndarray | None = None,
    ids: Sequence[str] | None = None,
    sample: int = SAMPLE,
    queries: int = QUERIES,
    seed: int = 0,
) -> Choice:
    """Return the cheapest index (by memory for all of ``xb``) meeting every target, measured on a sample.

    ``xq`` are query vectors (default: ``queries`` rows held out of ``xb``; all of ``xb`` below 20 vectors).
    When the measured sample is all of ``xb`` (``len(xb) <= sample`` and ``xq`` given, or fewer than 20
    vectors), ``Choice.index`` is the chosen index itself, under ``ids``.
    """
    _check_targets(max_memory, min_recall, max_latency_ms)
    xb = as_matrix(xb)
    n, dim = xb.shape
    rng = np.random.default_rng(seed)
    if xq is None and n < 20:  # too few to hold any out: the vectors themselves are the queries
        xq = xb
    if xq is None:
        held = np.sort(rng.choice(n, min(queries, max(10, n // 10)), replace=False))
        xq, rest = xb[held], np.setdiff1d(np.arange(n), held)
    else:
        xq, rest = as_matrix(xq, dim, name="queries"), np.arange(n)
    rows = np.sort(rng.choice(rest, sample, replace=False)) if len(rest) > sample else rest
    db = np.ascontiguousarray(xb[rows])
    whole = len(rows) == n
    db_ids = [str(i) for i in (ids if ids is not None and whole else rows.tolist())]
    truth = ground_truth(db, xq, k)
    cands, built = [], {}
    with faiss_threads(1):  # one thread: k-means and timings do not fight other work for cores
        for factory in candidate_factories(n, dim):
            cand, index = _try(factory, n, db, db_ids, xq, truth, k, max_memory, min_recall, max_latency_ms)
            cands.append(cand)
            built[cand.factory] = index
    fits = [c for c in cands if c.ok]
    chosen = min(fits, key=lambda c: (c.memory, c.p99_ms)) if fits else None
    for c in fits:
        c.verdict = ("chosen: least memory meeting every target" if c is chosen else
                     f"meets every target, but {format_size(c.memory)} > {format_size(chosen.memory)}")  # fmt: skip
    advice = "" if chosen else _advice(cands, max_memory)
    index = built[chosen.factory] if chosen and whole else None
    if index is not None:
        index.nprobe, index.ef_search = chosen.nprobe, chosen.ef_search
    return Choice(n, len(rows), int(max_memory), min_recall, max_latency_ms, cands, chosen, advice, index)
