"""Figures for the notebooks: one helper per figure, each with a title and labelled axes; each returns its figure or axes."""

from __future__ import annotations

import math
from collections.abc import Sequence

import faiss
import numpy as np

from searchkit.errors import InputError
from searchkit.index.codes import _find_pq, quantize_binary
from searchkit.index.vector import VectorIndex
from searchkit.measure.bench import OperatingPoint, pareto_front
from searchkit.validation import as_matrix


def _short(text: str, n: int = 28) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def plot_similarity_heatmap(texts: Sequence[str], sims: np.ndarray, title: str = "Cosine similarity of sentence embeddings"):
    """Draw the ``(n, n)`` similarity matrix ``sims`` of ``texts`` as an annotated heatmap; return the figure."""
    import matplotlib.pyplot as plt

    labels = [_short(t) for t in texts]
    fig, ax = plt.subplots(figsize=(7.5, 6))
    im = ax.imshow(sims, vmin=-0.2, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(labels)), labels, rotation=40, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, f"{sims[i, j]:.2f}", ha="center", va="center", color="w" if sims[i, j] < 0.6 else "k", fontsize=8)
    ax.set_title(title)
    ax.set_xlabel("sentence")
    ax.set_ylabel("sentence")
    fig.colorbar(im, ax=ax, label="cosine similarity (unitless, -1 to 1)")
    fig.tight_layout()
    return fig


def plot_throughput(batch_sizes: Sequence[int], texts_per_s: Sequence[float], title: str = "Encoder throughput vs batch size"):
    """Plot texts per second against batch size (log x axis); return the figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(batch_sizes, texts_per_s, marker="o")
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(batch_sizes), [str(b) for b in batch_sizes])
    ax.set_xlabel("batch size (texts per encoder call)")
    ax.set_ylabel("throughput (texts / second)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


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


def plot_scatter_gather(query: str, parts: Sequence, merged, shown: int = 3, title: str = "Scatter-gather over shards"):
    """Draw a query sent to every shard (their top ``shown`` hits) and the merged top k; return the figure.

    ``parts`` holds one single-query search result (``.ids[0]``, ``.scores[0]``) per shard, ``merged`` the merge.
    """
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab10").colors
    n = len(parts)
    fig, ax = plt.subplots(figsize=(11, 1.2 + 1.1 * n))
    ax.set_xlim(0, 10)
    ax.set_ylim(-0.5, n - 0.5)
    ax.axis("off")
    mid = (n - 1) / 2
    box = {"boxstyle": "round,pad=0.4", "fc": "white"}
    ax.text(0.9, mid, f"query\n“{_short(query, 22)}”", ha="center", va="center", fontsize=9, bbox={**box, "ec": "k"})
    owner = {}
    for s, part in enumerate(parts):
        y = n - 1 - s
        lines = [f"{_short(d, 24)}  {sc:.3f}" for d, sc in zip(part.ids[0][:shown], part.scores[0][:shown])]
        owner.update({d: s for d in part.ids[0]})
        ax.annotate("", xy=(3.0, y), xytext=(1.9, mid), arrowprops={"arrowstyle": "->", "color": "0.5"})
        ax.text(4.4, y, f"shard {s}\n" + "\n".join(lines), ha="center", va="center", fontsize=8, family="monospace",
                multialignment="left", bbox={**box, "ec": colors[s % 10]})  # fmt: skip
        ax.annotate("", xy=(7.0, mid), xytext=(5.9, y), arrowprops={"arrowstyle": "->", "color": colors[s % 10]})
    lines = [f"{r}. {_short(d, 24)}  {sc:.3f}" for r, (d, sc) in enumerate(zip(merged.ids[0], merged.scores[0]), 1)]
    ax.text(8.5, mid, "merged: highest\ninner products\n" + "\n".join(lines), ha="center", va="center", fontsize=8,
            family="monospace", multialignment="left", bbox={**box, "ec": "k"})  # fmt: skip
    ax.set_title(f"{title}: {n} shards, top {len(merged.ids[0])} kept (score = inner product)")
    fig.tight_layout()
    return fig


def plot_pq_codes(x: np.ndarray, index: VectorIndex, ax=None):
    """Draw one vector ``x`` ``(d,)`` split into the PQ sub-vectors of ``index`` and the one-byte code of each."""
    import matplotlib.pyplot as plt

    pq = _find_pq(index)
    m, dsub = pq.M, pq.dsub
    code = pq.compute_codes(as_matrix(x, pq.d))[0]
    recon = pq.decode(code.reshape(1, -1))[0]
    if ax is None:
        _, ax = plt.subplots(figsize=(10, 3.2))
    dims = np.arange(pq.d)
    colors = plt.cm.tab10(np.arange(m) % 10)
    for j in range(m):
        sl = slice(j * dsub, (j + 1) * dsub)
        ax.bar(dims[sl], x[sl], color=colors[j], width=1.0, alpha=0.55)
        ax.plot(dims[sl], recon[sl], color="black", lw=0.8)
    ymax = float(np.abs(x).max()) * 1.25
    for j in range(m):
        ax.text(j * dsub + dsub / 2, ymax * 0.92, str(int(code[j])), ha="center", fontsize=8)
    ax.set_ylim(-ymax, ymax)
    ax.set_title(f"PQ{m}: {pq.d} floats ({4 * pq.d} bytes) -> {m} sub-vectors -> {m} one-byte codes (numbers on top)")
    ax.set_xlabel("dimension (colour = sub-vector; black line = nearest codebook centroid)")
    ax.set_ylabel("component value")
    return ax


def plot_hamming_vs_cosine(xb: np.ndarray, pairs: int = 2000, seed: int = 0, ax=None):
    """Scatter the cosine of random pairs of unit vectors ``xb`` against the Hamming distance of their binary codes."""
    import matplotlib.pyplot as plt

    xb = as_matrix(xb)
    rng = np.random.default_rng(seed)
    a, b = rng.integers(0, len(xb), pairs), rng.integers(0, len(xb), pairs)
    codes = quantize_binary(xb)
    ham = np.unpackbits(codes[a] ^ codes[b], axis=1).sum(axis=1)
    cos = np.einsum("ij,ij->i", xb[a], xb[b])
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(cos, ham, s=4, alpha=0.4)
    r = np.corrcoef(cos, ham)[0, 1]
    ax.set_title(f"Hamming distance of {xb.shape[1]}-bit codes vs cosine (r = {r:.2f}, {pairs} random pairs)")
    ax.set_xlabel("cosine similarity of the float vectors")
    ax.set_ylabel("Hamming distance (bits that differ)")
    ax.grid(alpha=0.3)
    return ax


def plot_recall_vs_memory(rows: Sequence[dict], title: str = "Recall@10 against memory", ax=None):
    """Scatter bytes per vector (log scale) against recall@10, plain and re-ranked, one point per configuration."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    b = [r["bytes_per_vector"] for r in rows]
    ax.scatter(b, [r["recall_at_10"] for r in rows], marker="o", facecolors="none", edgecolors="C0", label="plain")
    ax.scatter(b, [r["recall_at_10_reranked"] for r in rows], marker="o", color="C1", label="re-ranked")
    placed: list[tuple[float, float]] = []
    for r in rows:
        x, y = r["bytes_per_vector"], r["recall_at_10_reranked"]
        near = any(abs(math.log10(x) - px) < 0.12 and abs(y - py) < 0.03 for px, py in placed)  # a label already there
        ax.annotate(r["index"].split(" (")[0], (x, y), fontsize=7, xytext=(3, -10) if near else (3, 3),
                    textcoords="offset points")  # fmt: skip
        placed.append((math.log10(x), y))
    ax.set_xscale("log")
    ax.set_xlabel("bytes per vector (serialized index / n, log scale)")
    ax.set_ylabel("recall@10 vs exact search")
    ax.set_title(title)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return ax


def plot_power_curve(rows: Sequence[dict], title: str = "Queries needed to detect the better system"):
    """Plot queries needed (log scale) against the CTR difference, one line per design; return the figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    x = [abs(r["ctr_diff"]) * 100 for r in rows]
    for design, marker in (("split", "o"), ("interleave", "s")):
        ax.plot(x, [r[design] or np.nan for r in rows], marker=marker, label=f"{design}")
    ax.set_yscale("log")
    ax.set_xlabel("true CTR difference between the arms (percentage points)")
    ax.set_ylabel("queries for 80% power at p < 0.05 (log)")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_training_curve(steps: Sequence[int], curves: dict[str, Sequence[float]], metric: str = "nDCG@10",
                        title: str = "Fine-tuning: training queries against held-out queries"):  # fmt: skip
    """Plot ``metric`` against training steps, one line per query set (e.g. training, held-out); return the figure."""
    import matplotlib.pyplot as plt

    if not curves or any(len(v) != len(steps) for v in curves.values()):
        raise InputError(f"give one value per step ({len(steps)} steps) for every curve, got lengths "
                         f"{ {k: len(v) for k, v in curves.items()} }")  # fmt: skip
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for (name, values), marker in zip(curves.items(), "osd^v"):
        ax.plot(steps, values, marker=marker, label=name)
    best = int(np.argmax(list(curves.values())[-1]))
    ax.axvline(steps[best], color="grey", ls=":", label=f"best held-out: step {steps[best]}")
    ax.set_xlabel("training steps (batches seen)")
    ax.set_ylabel(f"{metric} (higher is better)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig


def plot_dims_vs_quality(rows: Sequence[dict], metric: str = "ndcg@10",
                         title: str = "Truncated embeddings: dimensions against nDCG@10"):  # fmt: skip
    """Plot ``metric`` against kept dimensions (log x), one line per model; ``rows``: ``{"model", "dims", metric}``."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    models = list(dict.fromkeys(r["model"] for r in rows))
    for name, marker in zip(models, "osd^v"):
        mine = sorted((r["dims"], r[metric]) for r in rows if r["model"] == name)
        ax.plot([d for d, _ in mine], [v for _, v in mine], marker=marker, label=name)
    dims = sorted({r["dims"] for r in rows})
    ax.set_xscale("log", base=2)
    ax.set_xticks(dims, [f"{d}\n{d * 4} B" for d in dims])
    ax.set_xlabel("dimensions kept (and float32 bytes per vector)")
    ax.set_ylabel(metric.replace("ndcg", "nDCG"))
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
