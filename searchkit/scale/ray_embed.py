"""Embed a corpus across a Ray cluster: one model per worker actor, chunks dealt out to the workers in turn."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from searchkit.encoders.embed import PROGRESS_MIN, Embedder, check_texts
from searchkit.errors import ClusterError, InputError
from searchkit.scale import cluster  # noqa: F401  (sets the environment Ray reads on import)
from searchkit.threads import single_threaded


class EmbedWorker:
    """A Ray actor holding one embedding model, on one compute thread."""

    def __init__(self, model: str | None, backend: str, batch_size: int):
        single_threaded()
        self.embedder = Embedder(model, backend=backend, batch_size=batch_size)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Return ``(len(texts), dim)`` float32 unit vectors."""
        return self.embedder.encode(texts, progress=False)


def embed_on_cluster(
    texts: Sequence[str],
    workers: int = 2,
    chunk: int = 256,
    model: str | None = None,
    backend: str = "torch",
    batch_size: int = 64,
    num_cpus: float = 0.5,
    progress: bool | None = None,
    timeout_s: float | None = None,
) -> np.ndarray:
    """Embed ``texts`` with ``workers`` actors on the connected Ray cluster; return ``(n, dim)`` float32, in order.

    The same vectors as :meth:`Embedder.encode` on one machine (cosine ≥ 0.9999: batches differ, arithmetic
    barely does). Each worker takes ``chunk`` texts at a time; the progress bar counts finished texts.
    ``timeout_s`` bounds the whole call (ClusterError when the workers have not finished by then; None: no bound).
    """
    import ray
    from tqdm.auto import tqdm

    items = check_texts(texts)
    if not items:
        raise InputError("no texts to embed: give at least one string")
    for name, value in (("workers", workers), ("chunk", chunk)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")
    if timeout_s is not None and not (isinstance(timeout_s, (int, float)) and timeout_s > 0):
        raise InputError(f"timeout_s must be a positive number of seconds or None, got {timeout_s!r}")
    if not ray.is_initialized():
        raise InputError("no Ray cluster: call searchkit.scale.cluster.start_local() (or connect) first")
    actor = ray.remote(EmbedWorker).options(num_cpus=num_cpus, scheduling_strategy="SPREAD")
    pool = [actor.remote(model, backend, batch_size) for _ in range(workers)]
    try:
        starts = list(range(0, len(items), chunk))
        calls = {pool[i % workers].encode.remote(items[s : s + chunk]): s for i, s in enumerate(starts)}
        parts: dict[int, np.ndarray] = {}
        show = len(items) >= PROGRESS_MIN if progress is None else progress
        with tqdm(total=len(items), desc=f"embedding on {workers} workers", unit="text", disable=not show) as bar:
            pending, deadline = list(calls), None if timeout_s is None else time.monotonic() + timeout_s
            while pending:
                left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
                done, pending = ray.wait(pending, num_returns=1, timeout=left)
                if not done:
                    raise ClusterError(
                        f"embedding on {workers} workers did not finish in {timeout_s:g} s ({len(parts)} of "
                        f"{len(starts)} chunks done): the workers are starved or stuck; free CPUs or raise timeout_s"
                    )
                start = calls[done[0]]
                parts[start] = ray.get(done[0])
                bar.update(len(parts[start]))
    finally:
        for a in pool:
            ray.kill(a)
    return np.ascontiguousarray(np.concatenate([parts[s] for s in starts]), dtype=np.float32)
