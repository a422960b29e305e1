"""Measure search: exact ground truth, recall@k, latency percentiles, sweeps, Pareto frontiers, HTTP load, plots."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field

import faiss
import numpy as np

from .errors import InputError
from .index import VectorIndex, as_matrix
from .validation import check_positive_int

ROW_KEYS = ("index", "params", "recall_at_10", "p50_ms", "p99_ms", "qps_batch", "bytes_per_vector", "build_s")


def thread_count() -> int:
    """Return the number of OpenMP threads faiss uses (state it next to every timing)."""
    return int(faiss.omp_get_max_threads())


class faiss_threads:  # noqa: N801 - used like a function: ``with faiss_threads(1): ...``
    """Context manager running faiss with ``n`` OpenMP threads (None: leave as is), restoring the old count."""

    def __init__(self, n: int | None):
        self.n = n

    def __enter__(self) -> int:
        self.old = thread_count()
        if self.n:
            faiss.omp_set_num_threads(int(self.n))
        return thread_count()

    def __exit__(self, *exc) -> None:
        faiss.omp_set_num_threads(self.old)


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


def ground_truth(xb: np.ndarray, xq: np.ndarray, k: int = 10, metric: str = "ip") -> np.ndarray:
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


def measure(
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
    return [measure(index, xq, truth, k, name, **kwargs, **{param: int(v)}) for v in bar]


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


def format_table(points: Sequence[OperatingPoint], extra: Sequence[str] = ()) -> str:
    """Return the points as a fixed-width text table with the benchmark columns (plus ``extra`` float fields)."""
    head = f"{'index':<28} {'params':<14} {'recall@10':>9} {'p50_ms':>9} {'p99_ms':>9} {'qps_batch':>10} {'bytes/vec':>9} {'build_s':>8}"
    head += "".join(f" {name:>10}" for name in extra)
    lines = [head, "-" * len(head)]
    for p in points:
        lines.append(
            f"{p.index:<28} {p.params:<14} {p.recall:>9.3f} {p.p50_ms:>9.3f} {p.p99_ms:>9.3f} "
            f"{p.qps_batch:>10.0f} {p.bytes_per_vector:>9.0f} {p.build_s:>8.1f}"
            + "".join(f" {getattr(p, name):>10.3f}" for name in extra)
        )
    return "\n".join(lines)


# -- plots ---------------------------------------------------------------------------------------


def plot_pareto(points: Sequence[OperatingPoint], ax=None, title: str = "Recall vs latency", latency: str = "p50_ms"):
    """Plot recall@k against single-query latency for each index, with the Pareto frontier; return the axes."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(7, 4.5))[1]
    names = list(dict.fromkeys(p.index for p in points))
    for name in names:
        pts = [p for p in points if p.index == name]
        ax.plot([getattr(p, latency) for p in pts], [p.recall for p in pts], "o-", label=name, alpha=0.8)
        for p in pts:
            ax.annotate(p.params.split("=")[-1], (getattr(p, latency), p.recall), fontsize=7, xytext=(3, -9),
                        textcoords="offset points")
    front = pareto_front(points, latency)
    ax.step([getattr(p, latency) for p in front], [p.recall for p in front], "k--", where="post", lw=1,
            label="Pareto frontier")
    ax.set_xscale("log")
    threads = points[0].latency_threads if points else 1
    ax.set_xlabel(f"single-query latency {latency.split('_')[0]} (ms, log scale, {threads} thread(s))")
    ax.set_ylabel(f"recall@{points[0].k if points else 10} vs exact search")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_time_vs_n(
    ns: Sequence[int], ms: Sequence[float], ax=None, title: str = "Exact search time grows with N", threads: int = 1
):
    """Plot query latency (ms) against the number of vectors N; return the axes."""
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(6, 4))[1]
    ax.plot(ns, ms, "o-")
    ax.set_xlabel("number of vectors N")
    ax.set_ylabel(f"single-query latency p50 (ms, {threads} thread(s))")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    return ax


def plot_ivf_cells(x: np.ndarray, nlist: int = 12, nprobe: int = 2, query: np.ndarray | None = None, seed: int = 0,
                   ax=None, title: str | None = None):
    """Draw 2-d points ``x`` split into ``nlist`` IVF cells (k-means), highlighting the ``nprobe`` cells a query visits."""
    import matplotlib.pyplot as plt

    x = as_matrix(x)
    if x.shape[1] != 2:
        raise InputError(f"plot_ivf_cells draws 2-d points, got dimension {x.shape[1]}")
    km = faiss.Kmeans(2, nlist, niter=20, seed=seed)
    km.train(x)
    _, cell = km.index.search(x, 1)
    q = as_matrix(query if query is not None else x.mean(axis=0), 2)
    _, probed = km.index.search(q, nprobe)
    ax = ax or plt.subplots(figsize=(5.5, 5))[1]
    inside = np.isin(cell[:, 0], probed[0])
    ax.scatter(*x[~inside].T, c=cell[~inside, 0], cmap="tab20", s=8, alpha=0.35)
    ax.scatter(*x[inside].T, c=cell[inside, 0], cmap="tab20", s=14, edgecolors="k", linewidths=0.4,
               label=f"vectors in the {nprobe} probed cell(s)")
    ax.scatter(*km.centroids.T, marker="x", c="k", s=50, label=f"{nlist} centroids")
    ax.scatter(*q.T, marker="*", c="red", s=250, edgecolors="k", label="query")
    ax.set_title(title or f"IVF: {nlist} cells, nprobe={nprobe} (toy 2-d data)")
    ax.set_xlabel("dimension 1 (toy units)")
    ax.set_ylabel("dimension 2 (toy units)")
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_hnsw_layers(x: np.ndarray, m: int = 4, ax=None, title: str = "HNSW: a sparse top layer over a dense base layer"):
    """Build a small HNSW graph over 2-d points ``x`` and draw its layers side by side; return the axes."""
    import matplotlib.pyplot as plt

    x = as_matrix(x)
    if x.shape[1] != 2:
        raise InputError(f"plot_hnsw_layers draws 2-d points, got dimension {x.shape[1]}")
    index = faiss.IndexHNSWFlat(2, m)
    index.add(x)
    h = index.hnsw
    levels = faiss.vector_to_array(h.levels) - 1  # top layer of each node
    offsets = faiss.vector_to_array(h.offsets)
    cum = faiss.vector_to_array(h.cum_nneighbor_per_level)
    neighbors = faiss.vector_to_array(h.neighbors)
    top = int(levels.max())
    shown = list(range(min(top, 2), -1, -1))
    axes = ax if ax is not None else plt.subplots(1, len(shown), figsize=(4.2 * len(shown), 4), sharex=True, sharey=True)[1]
    axes = np.atleast_1d(axes)
    for a, layer in zip(axes, shown):
        nodes = np.flatnonzero(levels >= layer)
        for i in nodes:
            begin, end = int(offsets[i] + cum[layer]), int(offsets[i] + cum[layer + 1])
            for j in neighbors[begin:end]:
                if j >= 0:
                    a.plot(*x[[i, j]].T, c="tab:blue", lw=0.5, alpha=0.5)
        a.scatter(*x.T, c="lightgray", s=6)
        a.scatter(*x[nodes].T, c="tab:blue", s=14)
        a.scatter(*x[[h.entry_point]].T, c="red", marker="*", s=160, label="entry point")
        a.set_title(f"layer {layer}: {len(nodes)} nodes")
        a.set_xlabel("dimension 1 (toy units)")
    axes[0].set_ylabel("dimension 2 (toy units)")
    axes[0].legend(fontsize=8, loc="lower right")
    axes[0].figure.suptitle(f"{title} (M={m}, toy 2-d data)")
    return axes


def format_rows(rows: Sequence[dict], floats: str = ".3g") -> str:
    """Return dict rows (same keys) as an aligned text table."""
    if not rows:
        return "(no rows)"
    keys = list(rows[0])
    cells = [[f"{r[k]:{floats}}" if isinstance(r[k], float) else str(r[k]) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths))  # noqa: E731
    return "\n".join([line(keys), line(["-" * w for w in widths]), *(line(c) for c in cells)])


# -- over HTTP -----------------------------------------------------------------------------------

_SERVER_TOTAL = re.compile(rb'"total":\s*([0-9.]+)')


def load_test(url: str, queries: list[str], clients: int = 1, top_k: int = 10, path: str = "/search") -> dict:
    """POST each query once from ``clients`` threads (one keep-alive connection each).

    Return ``{"lat_ms": (n,) array, "wall_s", "rps", "errors", "cached", "p50", "p95", "p99", "server_p50",
    "server_p99"}``: latency as the client sees it, in ms (``server_*``: the app's own ``timings_ms.total``);
    ``errors`` counts non-200 answers and failed connections.
    """
    import http.client
    import json
    import threading
    from urllib.parse import urlsplit

    check_positive_int("clients", clients)
    parts = urlsplit(url)
    lat = np.zeros(len(queries))
    server_ms = np.full(len(queries), np.nan)
    ok = np.zeros(len(queries), dtype=bool)
    cached = np.zeros(len(queries), dtype=bool)
    todo = iter(range(len(queries)))
    lock = threading.Lock()

    def connect() -> http.client.HTTPConnection:
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

    def worker() -> None:
        conn = connect()
        while (i := next_index()) is not None:
            body = json.dumps({"query": queries[i], "top_k": top_k})
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                ok[i], cached[i] = resp.status == 200, b'"cached":true' in data
                if m := _SERVER_TOTAL.search(data):
                    server_ms[i] = float(m.group(1))
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = connect()
            lat[i] = (time.perf_counter() - t0) * 1000
        conn.close()

    def next_index() -> int | None:
        with lock:
            return next(todo, None)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(clients)]
    with Timer() as wall:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    p = percentiles(lat) if len(lat) else {"p50": 0.0, "p95": 0.0, "p99": 0.0}
    srv = server_ms[np.isfinite(server_ms)]
    s = percentiles(srv, (50, 99)) if len(srv) else {"p50": float("nan"), "p99": float("nan")}
    return {"lat_ms": lat, "wall_s": wall.s, "rps": len(queries) / wall.s if wall.s else 0.0,
            "errors": int((~ok).sum()), "cached": int(cached.sum()), **p,
            "server_p50": s["p50"], "server_p99": s["p99"]}  # fmt: skip


def plot_latency(rows: list[dict], title: str = "Search latency over HTTP"):
    """Bar chart of p50/p95/p99 (ms, log scale) per scenario; ``rows`` carry "label", "p50", "p95", "p99"."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.5))
    x = np.arange(len(rows))
    for j, q in enumerate(("p50", "p95", "p99")):
        ax.bar(x + (j - 1) * 0.27, [r[q] for r in rows], width=0.27, label=q)
    ax.set_xticks(x, [r["label"] for r in rows])
    ax.set_yscale("log")
    ax.set_ylabel("latency per request (ms, log scale)")
    ax.set_xlabel("scenario (query kind, concurrent clients)")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig
