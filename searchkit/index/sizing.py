"""Shape an index: IVF cell counts and HNSW graph size from the corpus size, :class:`IndexSpec`, faiss training settings."""

from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np

from searchkit.errors import InputError
from searchkit.validation import check_positive_int

MIN_POINTS_PER_CELL = 39  # faiss k-means warns below 39 training points per centroid (IVF cell, PQ code)


def suggest_nlist(n: int, per_sqrt: float = 8.0) -> int:
    """Return an IVF cell count for ``n`` vectors: the power of two nearest ``per_sqrt``·√n, with ≥ 39 points a cell."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < MIN_POINTS_PER_CELL:
        raise InputError(
            f"an IVF index needs at least {MIN_POINTS_PER_CELL} training vectors, got n={n!r}: "
            "use a 'Flat' index for so few documents"
        )
    if not per_sqrt > 0:
        raise InputError(f"per_sqrt must be positive (the rule of thumb is 4 to 16), got {per_sqrt!r}")
    nlist = 2 ** max(0, round(math.log2(per_sqrt * math.sqrt(n))))
    while nlist > 1 and n < MIN_POINTS_PER_CELL * nlist:
        nlist //= 2
    return int(nlist)


def ivf_factory(n: int, per_sqrt: float = 8.0, hnsw_quantizer: bool = False, codec: str = "Flat") -> str:
    """Return an IVF factory string sized for ``n`` vectors, e.g. ``'IVF1024,Flat'`` or ``'IVF1024_HNSW32,Flat'``."""
    nlist = suggest_nlist(n, per_sqrt)
    return f"IVF{nlist}{'_HNSW32' if hnsw_quantizer else ''},{codec}"


def hnsw_factory(m: int = 32) -> str:
    """Return an HNSW factory string with ``m`` neighbours per node, e.g. ``'HNSW32'``."""
    return f"HNSW{check_positive_int('HNSW M', m, minimum=4, maximum=256, hint='16 to 64 is usual')}"


@dataclass(frozen=True)
class IndexSpec:
    """A faiss factory string with the build and default search parameters that go with it."""

    factory: str
    ef_construction: int | None = None
    ef_search: int | None = None
    nprobe: int | None = None


def suggest_spec(n: int, kind: str = "auto") -> IndexSpec:
    """Return a sane :class:`IndexSpec` for ``n`` vectors; ``kind`` is 'auto', 'flat', 'ivf', 'ivf_hnsw' or 'hnsw'.

    'auto' picks exact Flat below 20,000 vectors (fast enough, recall 1.0) and HNSW32 above.
    """
    kinds = ("auto", "flat", "ivf", "ivf_hnsw", "hnsw")
    if kind not in kinds:
        raise InputError(f"unknown index kind {kind!r}: choose one of {', '.join(kinds)}")
    if kind == "auto":
        kind = "flat" if n < 20_000 else "hnsw"
    if kind == "flat":
        return IndexSpec("Flat")
    if kind == "hnsw":
        return IndexSpec(hnsw_factory(32), ef_construction=80, ef_search=64)
    nlist = suggest_nlist(n, per_sqrt=4.0 if n >= 100_000 else 8.0)
    nprobe = max(1, min(nlist, 2 ** round(math.log2(max(1.0, nlist / 32)))))  # ~3 % of the cells
    if kind == "ivf_hnsw":
        return IndexSpec(f"IVF{nlist}_HNSW32,Flat", ef_search=max(64, 2 * nprobe), nprobe=nprobe)
    return IndexSpec(f"IVF{nlist},Flat", nprobe=nprobe)


def quiet_clustering(index: faiss.Index) -> None:
    """Stop faiss printing a 'too few training points' line per k-means run (IVF centroids, PQ codebooks, OPQ)."""
    sub = index
    while sub is not None:
        sub = faiss.downcast_index(sub)
        for cp in (getattr(sub, "cp", None), getattr(getattr(sub, "pq", None), "cp", None)):
            if cp is not None:
                cp.min_points_per_centroid = 1
        chain = getattr(sub, "chain", None)  # IndexPreTransform: an OPQ rotation trains a PQ of its own
        for i in range(chain.size() if chain is not None else 0):
            vt = faiss.downcast_VectorTransform(chain.at(i))
            if isinstance(vt, faiss.OPQMatrix):
                vt.pq = faiss.ProductQuantizer(vt.d_out, vt.M, 8)
                vt.pq.cp.min_points_per_centroid = 1
                index.referenced_objects = [*getattr(index, "referenced_objects", []), vt, vt.pq]  # faiss keeps raw pointers
        sub = getattr(sub, "index", None)


def disable_polysemous(index: faiss.Index) -> None:
    """Switch off polysemous training (code re-ordering for Hamming filters: searchkit never uses it, and slow)."""
    sub = index
    while sub is not None:
        sub = faiss.downcast_index(sub)
        if hasattr(sub, "do_polysemous_training"):
            sub.do_polysemous_training = False
        sub = getattr(sub, "index", None)


def hnsw_of(index: faiss.Index) -> faiss.IndexHNSW | None:
    """Return ``index`` as an IndexHNSW if it is one, else None."""
    index = faiss.downcast_index(index)
    return index if isinstance(index, faiss.IndexHNSW) else None
