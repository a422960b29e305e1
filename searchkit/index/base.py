"""What every index is: the :class:`Index` protocol the engine searches through, and the :class:`SearchResult` it returns.

``VectorIndex`` (faiss), the compressed-code indexes of :mod:`searchkit.index.codes` and the sharded index of
:mod:`searchkit.scale.shards` all meet :class:`Index`, so :class:`~searchkit.engine.SearchEngine` takes any of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class SearchResult:
    """Results for a batch of queries: ``ids[q]`` and ``scores[q]`` hold the hits of query ``q``, best first.

    A sharded index that could not reach every shard sets ``partial`` and names the ``failed_shards``.
    """

    ids: list[list[str]]
    scores: list[list[float]]
    partial: bool = False
    failed_shards: list[int] = field(default_factory=list)


@runtime_checkable
class Index(Protocol):
    """An index of unit vectors under document ids, as the engine, the app and the benchmarks use it.

    ``version`` changes with every change to the vectors (caches compare it); ``model_id`` and ``backend``
    name the encoder that made the vectors (None: unknown); ``factory`` says what kind of index it is.
    """

    dim: int
    factory: str
    metric: str
    model_id: str | None
    backend: str | None
    version: int

    def __len__(self) -> int: ...

    def search(
        self, xq: np.ndarray, k: int = 10, nprobe: int | None = None, ef_search: int | None = None,
        subset: Iterable[str] | None = None, prefix: str | None = None,
    ) -> SearchResult:  # fmt: skip
        """Return the ``k`` best documents per row of ``xq`` (shape ``(nq, dim)``), best first."""
        ...

    def add(self, ids: Sequence[str], xb: np.ndarray) -> None:
        """Add vectors ``xb`` (shape ``(n, dim)``) under new ``ids``."""
        ...

    def remove(self, ids: Iterable[str]) -> int:
        """Remove the documents ``ids``; return how many were there."""
        ...
