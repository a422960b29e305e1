"""Compute threads, set in one place: how many threads torch, faiss (OpenMP) and BLAS use.

A server wants one thread per call (requests give the parallelism); a benchmark states the count beside every
timing; a Ray actor runs on one. OpenMP keeps its count per thread, so a worker thread that answers requests
calls :func:`use_compute_threads` to take the process's setting.
"""

from __future__ import annotations

import faiss

from searchkit.validation import check_positive_int

_threads: int | None = None  # what set_compute_threads asked for, applied per thread by use_compute_threads


def thread_count() -> int:
    """Return the number of OpenMP threads faiss uses in this thread (state it next to every timing)."""
    return int(faiss.omp_get_max_threads())


class faiss_threads:  # noqa: N801 - used like a function: ``with faiss_threads(1): ...``
    """Context manager running faiss with ``n`` OpenMP threads (None: leave as is), restoring the old count."""

    def __init__(self, n: int | None):
        check_positive_int("threads", n, none_ok=True)
        self.n = n

    def __enter__(self) -> int:
        self.old = thread_count()
        if self.n:
            faiss.omp_set_num_threads(int(self.n))
        return thread_count()

    def __exit__(self, *exc) -> None:
        faiss.omp_set_num_threads(self.old)


def set_compute_threads(n: int = 1, embedder=None) -> None:
    """Set the threads torch, faiss and BLAS use per call (process-wide); a server wants 1.

    An ONNX encoder fixes its threads when it loads: pass the ``embedder`` that was loaded before this call.
    With several threads each, the encoder's OpenMP workers spin and wait for one another; on a busy
    2-core machine that turned a 6 ms query embedding into seconds.
    """
    import torch
    from threadpoolctl import threadpool_limits

    global _threads
    check_positive_int("threads", n)
    torch.set_num_threads(n)
    faiss.omp_set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")  # numpy's BLAS (exact search in numpy, PCA, the benchmarks)
    _threads = n
    model = getattr(embedder, "model", None)
    if hasattr(model, "set_threads") and model.threads != n:
        model.set_threads(n)


def compute_threads() -> int | None:
    """Return what :func:`set_compute_threads` set, or None before it is called."""
    return _threads


def use_compute_threads() -> None:
    """Give the calling thread the faiss thread count of :func:`set_compute_threads` (a no-op before it is called).

    OpenMP keeps that count per thread: the worker threads that answer requests would otherwise search with
    every core, and the idle OpenMP workers' spinning took the encoder's and the client's CPU (one client at
    500K documents: p99 14.2 ms, 6.0 ms with this).
    """
    if _threads is not None and faiss.omp_get_max_threads() != _threads:
        faiss.omp_set_num_threads(_threads)


def single_threaded() -> None:
    """Run torch and faiss on one thread in this process (a Ray actor: the cluster gives the parallelism)."""
    import torch

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
