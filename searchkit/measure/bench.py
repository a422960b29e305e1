"""Measure search: exact ground truth, recall@k, latency percentiles, sweeps, Pareto frontiers, codec tables."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import faiss
import numpy as np

from searchkit.errors import InputError
from searchkit.index.codes import BinaryIndex, Int8Index, Reranked, build_index, calibration_ranges, serialized_size
from searchkit.index.vector import Metric, VectorIndex
from searchkit.relevance.metrics import ndcg
from searchkit.threads import faiss_threads, thread_count
from searchkit.validation import as_matrix

ROW_KEYS = ("index", "params", "recall_at_10", "p50_ms", "p99_ms", "qps_batch", "bytes_per_vector", "build_s")


class Timer:
    """Context manager measuring wall time: ``with Timer() as t: ...; t.s`` (seconds), ``t.ms``."""

    def __enter__(self) -> Timer:
        self._t0 = time.perf_counter()
        self.s = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.s = time.perf_counter() - self._t0

    @property
    def ms(self) -> float:
        """Return the elapsed time in milliseconds."""
        return self.s * 1000.0


def percentiles(samples_ms: Sequence[float], qs: Iterable[float] = (50, 95, 99)) -> dict[str, float]:
    """Return ``{'p50': ..., 'p95': ..., 'p99': ...}`` of ``samples_ms`` (linear interpolation, numpy's default)."""
    a = np.asarray(samples_ms, dtype=np.float64)
    if a.size == 0:
        raise InputError("no latency samples: time at least one query")
    return {f"p{q:g}": float(np.percentile(a, q)) for q in qs}


@dataclass
class Latency:
    """Single-query latency in milliseconds over ``n`` timed queries, with the faiss thread count."""

    p50_ms: float
    p95_ms: float
    p99_ms: float
    mean_ms: float
    n: int
    threads: int
    p99_raw_ms: float = float("nan")
    p99_min_ms: float = float("nan")  # p99 of each query's fastest run: the spread without preemption


def time_single(
    search: Callable[[np.ndarray], object],
    xq: np.ndarray,
    warmup: int = 10,
    repeats: int = 1,
    threads: int | None = 1,
    per_query: str = "all",
) -> Latency:
    """Time ``search`` on one query row at a time (after ``warmup`` untimed calls); return percentiles in ms.

    ``threads=1`` (default) times a query the way a server answers one request per thread; OpenMP
    fork/join for a single query only adds waiting on a busy machine. ``None`` keeps faiss' setting.
    ``per_query="min"`` keeps each query's fastest of ``repeats`` runs before taking percentiles: the
    spread across queries without scheduler preemption on a shared machine (``p99_raw_ms`` keeps all runs).
    """
    if per_query not in ("all", "min"):
        raise InputError(f"per_query must be 'all' or 'min', got {per_query!r}")
    xq = as_matrix(xq, name="queries")
    if len(xq) == 0:
        raise InputError("no queries to time: give at least one query row")
    with faiss_threads(threads) as used:
        for i in range(min(warmup, len(xq))):
            search(xq[i : i + 1])
        runs = np.empty((max(1, repeats), len(xq)))
        for r in range(len(runs)):
            for i in range(len(xq)):
                q = xq[i : i + 1]
                t0 = time.perf_counter()
                search(q)
                runs[r, i] = (time.perf_counter() - t0) * 1000.0
    samples = runs.min(axis=0) if per_query == "min" else runs.ravel()
    p = percentiles(samples)
    raw = percentiles(runs.ravel(), (99,))["p99"]
    fastest = percentiles(runs.min(axis=0), (99,))["p99"]
    return Latency(p["p50"], p["p95"], p["p99"], float(np.mean(samples)), len(samples), used, raw, fastest)


def time_batch(search: Callable[[np.ndarray], object], xq: np.ndarray, repeats: int = 3) -> float:
    """Return batch throughput in queries per second: the median of ``repeats`` runs over all of ``xq``."""
    xq = as_matrix(xq, name="queries")
    search(xq[: min(16, len(xq))])  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        search(xq)
        times.append(time.perf_counter() - t0)
    return len(xq) / float(np.median(times))


def ground_truth(xb: np.ndarray, xq: np.ndarray, k: int = 10, metric: Metric = "ip") -> np.ndarray:
    """Return the exact top-``k`` row numbers of ``xb`` for each query (int64, shape ``(len(xq), k)``)."""
    xb, xq = as_matrix(xb), as_matrix(xq, name="queries")
    index = faiss.IndexFlatIP(xb.shape[1]) if metric == "ip" else faiss.IndexFlatL2(xb.shape[1])
    index.add(xb)
    _, I = index.search(as_matrix(xq, xb.shape[1], name="queries"), min(k, len(xb)))
    return I


def recall_at_k(found: Sequence[Sequence], truth: Sequence[Sequence], k: int = 10) -> float:
    """Return the mean share of the true top-``k`` found in each row's top-``k`` (ids or labels; -1 ignored)."""
    if len(found) != len(truth):
        raise InputError(f"got results for {len(found)} queries but ground truth for {len(truth)}: align them")
    if len(truth) == 0:
        raise InputError("no queries: recall needs at least one")
    hits = 0.0
    for f, t in zip(found, truth):
        t_k = set(list(t)[:k]) - {-1}
        f_k = set(list(f)[:k]) - {-1}
        hits += len(f_k & t_k) / max(1, len(t_k))
    return hits / len(truth)


def index_bytes(index: VectorIndex | faiss.Index) -> int:
    """Return the serialized size of an index in bytes (vectors, graph or lists, and id map)."""
    raw = index.index if isinstance(index, VectorIndex) else index
    return int(faiss.serialize_index(raw).size)


@dataclass
class OperatingPoint:
    """One measured configuration: recall@k against exact search and latency/throughput."""

    index: str
    params: str
    recall: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    qps_batch: float
    bytes_per_vector: float = float("nan")
    build_s: float = float("nan")
    k: int = 10
    latency_threads: int = 1
    batch_threads: int = field(default_factory=thread_count)
    p99_raw_ms: float = float("nan")
    p99_min_ms: float = float("nan")

    def row(self) -> dict:
        """Return the benchmark row with the keys of :data:`ROW_KEYS`."""
        d = asdict(self)
        d["recall_at_10"] = d.pop("recall")
        return {key: d[key] for key in ROW_KEYS}


def measure_operating_point(
    index: VectorIndex,
    xq: np.ndarray,
    truth: np.ndarray,
    k: int = 10,
    name: str | None = None,
    warmup: int = 10,
    latency_queries: int | None = None,
    latency_threads: int | None = 1,
    repeats: int = 1,
    per_query: str = "all",
    build_s: float = float("nan"),
    bytes_per_vector: float = float("nan"),
    **params: int,
) -> OperatingPoint:
    """Measure ``index`` at search ``params`` (``nprobe=`` or ``ef_search=``): recall@k, single-query latency, batch qps.

    Labels must equal the row numbers of the vectors ``truth`` refers to (true when ids were added in order).
    """

    def search(q: np.ndarray) -> np.ndarray:
        return index.search_raw(q, k, **params)[1]

    recall = recall_at_k(search(xq), truth, k)
    lat = time_single(search, xq[:latency_queries] if latency_queries else xq, warmup=warmup, repeats=repeats,
                      threads=latency_threads, per_query=per_query)
    qps = time_batch(search, xq)
    qps_threads = thread_count()
    label = ", ".join(f"{key}={v}" for key, v in params.items()) or "-"
    return OperatingPoint(
        name or index.factory, label, recall, lat.p50_ms, lat.p95_ms, lat.p99_ms, qps, bytes_per_vector, build_s, k,
        lat.threads, qps_threads, lat.p99_raw_ms, lat.p99_min_ms,
    )


def sweep(
    index: VectorIndex,
    xq: np.ndarray,
    truth: np.ndarray,
    param: str,
    values: Iterable[int],
    k: int = 10,
    name: str | None = None,
    progress: bool | None = None,
    **kwargs,
) -> list[OperatingPoint]:
    """Measure ``index`` at each value of search parameter ``param`` ('nprobe' or 'ef_search')."""
    if param not in ("nprobe", "ef_search"):
        raise InputError(f"unknown search parameter {param!r}: sweep 'nprobe' (IVF) or 'ef_search' (HNSW)")
    from tqdm.auto import tqdm

    values = list(values)
    bar = tqdm(values, desc=f"sweep {param}", disable=not progress if progress is not None else len(values) < 3)
    return [measure_operating_point(index, xq, truth, k, name, **kwargs, **{param: int(v)}) for v in bar]


def pareto_front(points: Sequence[OperatingPoint], latency: str = "p50_ms") -> list[OperatingPoint]:
    """Return the points no other point beats on both recall (higher) and ``latency`` (lower), fastest first."""
    ordered = sorted(points, key=lambda p: (getattr(p, latency), -p.recall))
    front: list[OperatingPoint] = []
    best = -1.0
    for p in ordered:
        if p.recall > best:
            front.append(p)
            best = p.recall
    return front


def best_at_recall(points: Sequence[OperatingPoint], target: float, latency: str = "p99_ms") -> OperatingPoint | None:
    """Return the fastest point (by ``latency``) whose recall is at least ``target``, or None."""
    ok = [p for p in points if p.recall >= target]
    return min(ok, key=lambda p: getattr(p, latency)) if ok else None


# -- over HTTP -----------------------------------------------------------------------------------


# -- compressed indexes --------------------------------------------------------------------------


def _codec(factory: str, xb: np.ndarray, ids: list[str], originals: np.ndarray, flat: VectorIndex, k: int,
           nprobe: int | None, max_train: int):  # fmt: skip
    """Build one configuration of :func:`measure_codecs`; return its label, index, plain search and a function
    that gives the re-ranked search for a ratio (candidates fetched per result)."""
    if factory == "int8":
        index = Int8Index(xb.shape[1], calibration_ranges(xb[: min(len(xb), max_train)]))
        index.add(ids, xb)
        return factory, index, lambda q: index.search(q, k, rescore=False), lambda r: lambda q: index.search(q, k, ratio=r)
    if factory.startswith("Binary"):
        index = BinaryIndex(xb.shape[1])
        index.add(ids, xb)
        orig = originals if factory == "Binary" else None
        return (factory, index, lambda q: index.search(q, k, rescore=False),
                lambda r: lambda q: index.search(q, k, ratio=r, originals=orig))  # fmt: skip
    if factory == "Flat":
        return factory, flat, lambda q: flat.search(q, k), lambda r: lambda q: flat.search(q, k)
    vi = build_index(factory, xb, ids, max_train=max_train)
    if vi.kind != "ivf":
        return factory, vi, lambda q: vi.search(q, k), lambda r: Reranked(vi, originals, ratio=r).search
    probe = min(vi.nlist, nprobe or max(16, vi.nlist // 16))  # type: ignore[type-var, operator]
    params = vi.search_params(nprobe=probe)

    def reranked(r: int):
        reranker = Reranked(vi, originals, ratio=r)
        return lambda q: reranker.search(q, k, params=params)

    return f"{factory} (nprobe={probe})", vi, lambda q: vi.search(q, k, nprobe=probe), reranked


def measure_codecs(
    factories: Sequence[str],
    xb: np.ndarray,
    xq: np.ndarray,
    ids: Sequence[str] | None = None,
    originals: np.ndarray | None = None,
    qrels: dict[str, dict[str, int]] | None = None,
    qids: Sequence[str] | None = None,
    k: int = 10,
    ratio: int | Sequence[int] = 10,
    nprobe: int | None = None,
    max_train: int = 10_000,
    timing_queries: int = 200,
    progress: bool = False,
) -> list[dict]:
    """Build each compressed configuration on ``xb``, measure memory, recall and latency with ``xq``; one dict each.

    ``factories`` are faiss factory strings plus ``int8``, ``Binary`` (re-scored with ``originals``) and
    ``Binary,rescore=signs`` (re-scored against its own +1/-1 codes). Keys: index, bytes_per_vector (serialized
    size / n), recall_at_10 and recall_at_10_reranked (against exact search), p50_ms and p99_ms (single
    queries, re-ranked path), build_s, ndcg_at_10 (re-ranked results; None without ``qrels``). ``ratio``: the
    candidates re-ranked per result; a list of ratios measures each on the same build (one row each, with a
    ``ratio`` key), factory by factory.
    """
    from tqdm.auto import tqdm

    xb, xq = as_matrix(xb), as_matrix(xq, name="queries")
    n = len(xb)
    ids = [str(i) for i in range(n)] if ids is None else list(ids)
    flat = build_index("Flat", xb, ids)
    truth = flat.search(xq, k).ids
    timed = xq[np.arange(timing_queries) % len(xq)]
    ratios = [ratio] if isinstance(ratio, int) else list(ratio)
    rows = []
    for factory in tqdm(factories, desc="configurations", disable=not progress):
        with Timer() as build:
            label, index, plain, rerank = _codec(factory, xb, ids, xb if originals is None else originals, flat, k,
                                                 nprobe, max_train)  # fmt: skip
        plain_recall = round(recall_at_k(plain(xq).ids, truth, k), 4)
        size = round(serialized_size(index) / n, 1)  # once per build: serializing a 1M-vector index takes a while
        for r in ratios:
            reranked = rerank(r)
            found = reranked(xq).ids
            lat = time_single(reranked, timed, threads=None)
            score = None
            if qrels is not None and qids is not None:
                score = round(float(np.mean([ndcg(f, qrels[q], k) for f, q in zip(found, qids)])), 4)
            rows.append({
                "index": label,
                **({} if isinstance(ratio, int) else {"ratio": r}),
                "bytes_per_vector": size,
                "recall_at_10": plain_recall,
                "recall_at_10_reranked": round(recall_at_k(found, truth, k), 4),
                "p50_ms": round(lat.p50_ms, 3),
                "p99_ms": round(lat.p99_ms, 3),
                "build_s": 0.0 if factory == "Flat" else round(build.s, 2),
                "ndcg_at_10": score,
            })  # fmt: skip
    return rows
