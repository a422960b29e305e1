"""Memory arithmetic of faiss indexes: bytes per vector from a factory string, and the size of a saved index."""

from __future__ import annotations

import re
from dataclasses import dataclass

import faiss

from searchkit.errors import InputError
from searchkit.index.sizing import MIN_POINTS_PER_CELL

ID_BYTES = 8  # faiss stores one int64 label per vector (IDMap and inverted lists alike)


_STORAGES = ("IndexFlat", "IndexScalarQuantizer", "IndexPQ", "IndexPQFastScan")  # whose fixed bytes we know


@dataclass
class MemoryEstimate:
    """Bytes an index needs: ``per_vector`` for every vector added plus ``fixed`` (codebooks, centroids)."""

    factory: str
    dim: int
    per_vector: float
    fixed: int
    min_train: int  # fewest training vectors faiss accepts (0: no training)
    good_train: int  # training vectors for well-fitted codebooks and centroids

    def total(self, n: int) -> int:
        """Return the estimated bytes of an index holding ``n`` vectors."""
        return int(round(self.fixed + self.per_vector * n))


def _hnsw_graph_bytes(m: int) -> float:
    """Return the expected bytes per node of a faiss HNSW graph with ``M = m``."""
    # level 0 keeps 2M neighbours, every upper level M; P(level >= l) = M**-l, so E[levels above 0] = 1/(M-1).
    # Each neighbour is an int32; each node also has an int32 level and a size_t offset.
    return 4 * (2 * m + m / (m - 1)) + 4 + 8


def _faiss_storage(part: str, dim: int) -> tuple[int, int, bool]:
    """Return faiss's ``(code bytes, PQ centroids per sub-quantizer or 0, trained)`` for storage ``part``."""
    standalone = re.sub(r"(fs)r$|np$", r"\1", part)  # IVF-only variants with the same codes: fsr (residual), np
    try:
        index = faiss.index_factory(dim, standalone)
    except RuntimeError:
        index = None
    known = index is not None and type(faiss.downcast_index(index)).__name__ in _STORAGES
    if known:  # read while ``index`` (the owner of the downcast view) is alive
        pq = getattr(faiss.downcast_index(index), "pq", None)
        return index.sa_code_size(), pq.ksub if pq is not None else 0, index.is_trained
    if m := re.fullmatch(r"PQ(\d+)(?:x(\d+))?(fsr?)?(?:np)?", part):
        if dim % int(m[1]):
            raise InputError(f"PQ{m[1]} needs a dimension divisible by {m[1]}, got {dim}: pick M among the divisors of {dim}")
        if m[3]:
            raise InputError(f"{part}: fast-scan PQ works on 4-bit codes only: write PQ{m[1]}x4fs")
    raise InputError(
        f"the memory calculator does not know the storage {part!r}: "
        "use Flat, SQ4/SQ6/SQ8/SQfp16, PQ<M>[x<bits>], PQ<M>x4fs or Binary"
    )


def _code_bytes(part: str, dim: int) -> tuple[float, int, int, int]:
    """Return ``(bytes per vector, fixed bytes, min training points, good training points)`` of a storage."""
    if part in ("BFlat", "Binary"):  # not a faiss float index: 1 bit per dimension
        if dim % 8:
            raise InputError(f"binary codes need a dimension divisible by 8, got {dim}")
        return dim // 8, 0, 0, 0
    code, ksub, trained = _faiss_storage(part, dim)  # bytes per code: faiss's answer
    if ksub:  # a codebook of ksub centroids per sub-quantizer: ksub x dim floats in all
        return code, ksub * dim * 4, ksub, MIN_POINTS_PER_CELL * ksub
    if not trained:  # scalar quantizers that learn a per-dimension min and range
        return code, 2 * dim * 4, 1, 1000
    return code, 0, 0, 0


def memory_estimate(factory: str, dim: int = 384, id_map: bool = True) -> MemoryEstimate:
    """Return the memory a faiss ``factory`` index of dimension ``dim`` needs (``id_map``: wrapped as VectorIndex does).

    Knows Flat, SQ4/6/8/fp16, PQ<M>[x<bits>] and fast-scan PQ<M>x4fs, IVF<n>,<storage>, HNSW<M>[,<storage>], OPQ<M>[_<d>] and
    PCA<d> transforms, ``RFlat`` / ``Refine(<storage>)`` re-ranking stores, and ``Binary`` (1 bit per dimension).
    """
    if not isinstance(factory, str) or not factory.strip():
        raise InputError(f"factory must be a non-empty string like 'IVF1024,PQ32', got {factory!r}")
    parts = [p.strip() for p in re.split(r",(?![^(]*\))", factory)]
    d, per, fixed, min_train, good_train = dim, 0.0, 0, 0, 0
    per += ID_BYTES if id_map else 0
    storage_seen = False
    for part in parts:
        if m := re.fullmatch(r"OPQ(\d+)(?:_(\d+))?", part):
            d_out = int(m[2] or d)
            fixed += 4 * d * d_out
            min_train, good_train = max(min_train, 256), max(good_train, MIN_POINTS_PER_CELL * 256)
            d = d_out
        elif m := re.fullmatch(r"PCAR?(\d+)", part):
            d_out = int(m[1])
            fixed += 4 * (d * d + d_out * d + 2 * d + d_out)  # eigenvectors, projection, eigenvalues, mean, bias
            min_train, good_train = max(min_train, d), max(good_train, 10 * d)
            d = d_out
        elif m := re.fullmatch(r"IVF(\d+)", part):
            nlist = int(m[1])
            per += ID_BYTES  # inverted lists store each vector's label next to its code
            fixed += nlist * d * 4  # Flat coarse quantizer: one centroid per list
            min_train, good_train = max(min_train, nlist), max(good_train, MIN_POINTS_PER_CELL * nlist)
        elif m := re.fullmatch(r"HNSW(\d+)(?:_(\w+))?", part):
            per += _hnsw_graph_bytes(int(m[1]))
            if m[2]:
                c, f, lo, hi = _code_bytes(m[2], d)
                per, fixed, storage_seen = per + c, fixed + f, True
                min_train, good_train = max(min_train, lo), max(good_train, hi)
        elif part == "RFlat" or (m := re.fullmatch(r"Refine\((\w+)\)", part)):
            c, f, lo, hi = _code_bytes("Flat" if part == "RFlat" else m[1], dim)
            per, fixed = per + c, fixed + f
            min_train, good_train = max(min_train, lo), max(good_train, hi)
        else:
            c, f, lo, hi = _code_bytes(part, d)
            per, fixed, storage_seen = per + c, fixed + f, True
            min_train, good_train = max(min_train, lo), max(good_train, hi)
    if not storage_seen and re.match(r"HNSW", parts[-1]):
        per += 4 * d  # a bare HNSW<M> stores full vectors
    elif not storage_seen:
        raise InputError(f"factory {factory!r} names no storage: end it with Flat, SQ8, PQ<M> or similar")
    return MemoryEstimate(factory, dim, per, fixed, min_train, good_train)


def bytes_per_vector(factory: str, dim: int = 384, id_map: bool = True) -> float:
    """Return the bytes each added vector costs in a ``factory`` index (fixed codebooks not counted)."""
    return memory_estimate(factory, dim, id_map).per_vector


def check_training_size(factory: str, n_train: int, dim: int = 384) -> None:
    """Raise InputError when ``n_train`` vectors are too few to train a ``factory`` index."""
    est = memory_estimate(factory, dim)
    if n_train < est.min_train:
        need = []
        for part in re.split(r",(?![^(]*\))", factory):
            if m := re.fullmatch(r"(?:O?PQ|HNSW\d+_PQ)(\d+)(?:x(\d+))?(?:fsr?)?(?:_\d+)?", part.strip()):
                k = 2 ** int(m[2] or 8)
                need.append(f"{part.strip()} trains {k} centroids per sub-quantizer")
            elif m := re.fullmatch(r"IVF(\d+)", part.strip()):
                need.append(f"{part.strip()} trains {m[1]} coarse centroids")
        why = "; ".join(need) or "its quantizers need more points"
        raise InputError(
            f"index {factory!r} needs at least {est.min_train:,} training vectors but got {n_train:,} ({why}): "
            f"train on more vectors (at least {est.good_train:,} for good codebooks), or use fewer bits, "
            "fewer lists, or a Flat/SQ8 index"
        )
