"""Figures for the notebooks: one helper per figure, each with a title and labelled axes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
