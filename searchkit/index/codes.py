"""Compressed vector indexes: PQ/IVFPQ/SQ/OPQ builds, re-ranking, int8 and binary codes, and their sizes."""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np

from searchkit.errors import InputError, SearchIndexError
from searchkit.index.memory import check_training_size, memory_estimate
from searchkit.index.vector import SearchResult, VectorIndex
from searchkit.validation import as_matrix, check_ids_match, check_positive_int

# -- memory calculator -------------------------------------------------------------------------


# -- building compressed indexes ---------------------------------------------------------------


def build_index(
    factory: str,
    xb: np.ndarray,
    ids: Sequence[str] | None = None,
    train: np.ndarray | None = None,
    max_train: int | None = None,
    model_id: str | None = None,
    seed: int = 0,
    progress: bool = False,
) -> VectorIndex:
    """Train a ``factory`` VectorIndex and add ``xb`` (shape ``(n, d)``) under ``ids`` (default: row numbers).

    Training uses ``train`` if given, else a seeded sample of ``xb`` of at most ``max_train`` rows (default:
    the recommended size for the factory). Raises InputError when there are too few training vectors.
    """
    xb = as_matrix(xb)
    n, dim = xb.shape
    est = memory_estimate(factory, dim)
    limit = max_train or max(est.good_train, 10_000)
    n_train = len(train) if train is not None else min(n, limit)
    check_training_size(factory, n_train, dim)
    quiet = n_train < est.good_train
    if quiet:
        import warnings

        warnings.warn(f"training {factory!r} on {n_train:,} vectors; {est.good_train:,} or more give better codebooks",
                      stacklevel=2)  # fmt: skip  (it replaces faiss's one line per sub-quantizer)
    ids = [str(i) for i in range(n)] if ids is None else ids
    return VectorIndex.build(ids, xb, factory, model_id=model_id, progress=progress, train=train, max_train=limit,
                             seed=seed, quiet=quiet)  # fmt: skip


# -- re-ranking ----------------------------------------------------------------------------------


def _exact_top_k(xq: np.ndarray, cand: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Re-score candidate rows ``cand`` (``(nq, c)``, -1 = none) of ``vectors`` by inner product; keep ``k``."""
    nq, c = cand.shape
    scores = np.full((nq, c), -np.inf, dtype=np.float32)
    for q in range(nq):
        ok = cand[q] >= 0
        rows = cand[q][ok]
        order = np.argsort(rows)  # read a memory-mapped file front to back
        got = np.empty((len(rows), vectors.shape[1]), dtype=np.float32)
        got[order] = vectors[rows[order]]
        scores[q, ok] = got @ xq[q]
    k = min(k, c)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, top, 1), np.take_along_axis(cand, top, 1)


class Reranked:
    """A compressed VectorIndex whose top ``k * ratio`` candidates are re-scored exactly with the original vectors.

    ``originals`` (shape ``(n, d)``, row i = the i-th vector added) may be a ``np.memmap`` so the full-precision
    copy stays on disk and only the candidates are read: RAM holds just the compressed codes.
    """

    def __init__(self, index: VectorIndex, originals: np.ndarray, ratio: int = 4):
        check_positive_int("ratio", ratio, hint="candidates fetched per result")
        if originals.ndim != 2 or originals.shape[1] != index.dim:
            raise InputError(
                f"originals have shape {originals.shape} but the index has dimension {index.dim}: "
                "pass the full-precision vectors the index was built from"
            )
        if len(originals) != len(index.ids):
            raise InputError(
                f"originals have {len(originals)} rows but the index holds {len(index.ids)} vectors: "
                "pass one original per added vector, in the order they were added"
            )
        self.index, self.originals, self.ratio = index, originals, int(ratio)

    def __repr__(self) -> str:
        return f"Reranked({self.index.factory!r}, ratio={self.ratio})"

    @property
    def factory(self) -> str:
        """The compressed index's factory string and the re-ranking, e.g. ``'IVF4096,PQ48x4fs, re-ranked x10'``."""
        return f"{self.index.factory}, re-ranked x{self.ratio}"

    def search(self, xq: np.ndarray, k: int = 10, params: faiss.SearchParameters | None = None) -> SearchResult:
        """Fetch ``k * ratio`` candidates per query row of ``xq``, re-score them exactly, return the best ``k``."""
        D, I = self._search(xq, k, params)
        return _result(D, I, self.index.ids)

    def search_raw(
        self, xq: np.ndarray, k: int = 10, nprobe: int | None = None, ef_search: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(D, I)`` like :meth:`VectorIndex.search_raw` (row numbers as labels): for benchmarks."""
        return self._search(xq, k, self.index.search_params(nprobe, ef_search))

    def _search(self, xq: np.ndarray, k: int, params: faiss.SearchParameters | None) -> tuple[np.ndarray, np.ndarray]:
        check_positive_int("k", k)
        xq = as_matrix(xq, self.index.dim, name="queries")
        if len(self.index) == 0:
            raise SearchIndexError("index is empty: add vectors before searching")
        fetch = min(int(k) * self.ratio, len(self.index))
        _, I = self.index.index.search(xq, fetch, params=params)
        return _exact_top_k(xq, I, self.originals, int(k))


def _result(D: np.ndarray, I: np.ndarray, ids: Sequence[str | None]) -> SearchResult:
    out_ids, out_scores = [], []
    for drow, irow in zip(D, I):
        keep = (irow >= 0) & np.isfinite(drow)
        out_ids.append([ids[j] for j in irow[keep]])
        out_scores.append([float(s) for s in drow[keep]])
    return SearchResult(out_ids, out_scores)  # type: ignore[arg-type]


# -- embedding quantization: int8 and binary -------------------------------------------------------


def calibration_ranges(xb: np.ndarray) -> np.ndarray:
    """Return per-dimension ``[min, max]`` of sample embeddings ``xb``: shape ``(2, d)``, for :func:`quantize_int8`."""
    xb = as_matrix(xb, name="calibration embeddings")
    if len(xb) < 2:
        raise InputError(f"calibration needs at least 2 embeddings, got {len(xb)}: pass a representative sample")
    return np.stack([xb.min(axis=0), xb.max(axis=0)]).astype(np.float32)


def quantize_int8(x: np.ndarray, ranges: np.ndarray | None) -> np.ndarray:
    """Map float embeddings ``(n, d)`` to int8 using calibration ``ranges`` ``(2, d)``; clip values outside them."""
    if ranges is None:
        raise InputError(
            "int8 quantization needs calibration ranges: compute ranges = calibration_ranges(sample) on "
            "a representative sample of document embeddings and pass the same ranges for documents and queries"
        )
    x = as_matrix(x, name="embeddings")
    ranges = np.asarray(ranges, dtype=np.float32)
    if ranges.shape != (2, x.shape[1]):
        raise InputError(f"ranges must have shape (2, {x.shape[1]}) (min row, max row), got {ranges.shape}")
    start, step = ranges[0], (ranges[1] - ranges[0]) / 255
    step = np.where(step > 0, step, 1e-12)
    return np.clip(np.rint((x - start) / step) - 128, -128, 127).astype(np.int8)


def dequantize_int8(codes: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Map int8 codes back to approximate float32 embeddings with the same calibration ``ranges``."""
    ranges = np.asarray(ranges, dtype=np.float32)
    step = (ranges[1] - ranges[0]) / 255
    return ((codes.astype(np.float32) + 128) * step + ranges[0]).astype(np.float32)


def quantize_binary(x: np.ndarray) -> np.ndarray:
    """Return ``ubinary`` codes of ``x`` ``(n, d)``: one bit per dimension (1 where > 0), packed ``(n, d/8)`` uint8."""
    x = as_matrix(x, name="embeddings")
    if x.shape[1] % 8:
        raise InputError(f"binary codes need a dimension divisible by 8, got {x.shape[1]}")
    return np.packbits(x > 0, axis=1)


def unpack_signs(codes: np.ndarray) -> np.ndarray:
    """Return packed binary ``codes`` as ``(n, d)`` float32 vectors of +1/-1."""
    return np.unpackbits(codes, axis=1).astype(np.float32) * 2 - 1


class _CodeIndex:
    """Vectors stored as codes (``_codes`` turns float rows into what the faiss ``index`` holds) under document ids."""

    dim: int
    index: faiss.Index | faiss.IndexBinary
    ids: list[str]

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def _codes(self, xb: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def add(self, ids: Sequence[str], xb: np.ndarray) -> None:
        """Encode float vectors ``xb`` ``(n, dim)`` and add them under ``ids``."""
        xb = as_matrix(xb, self.dim)
        check_ids_match(ids, xb)
        self.index.add(self._codes(xb))
        self.ids.extend(str(i) for i in ids)


class BinaryIndex(_CodeIndex):
    """One bit per dimension (``ubinary``), searched by Hamming distance in a faiss IndexBinaryFlat.

    ``search`` fetches ``k * ratio`` candidates by Hamming distance and re-scores them with the float query:
    exactly against ``originals`` when given, else against the +1/-1 codes (no extra memory).
    """

    def __init__(self, dim: int):
        if not isinstance(dim, int) or dim < 8 or dim % 8:
            raise InputError(f"binary codes need a dimension divisible by 8, got {dim!r}")
        self.dim = dim
        self.index = faiss.IndexBinaryFlat(dim)
        self.ids: list[str] = []

    def _codes(self, xb: np.ndarray) -> np.ndarray:
        return quantize_binary(xb)

    def search(
        self, xq: np.ndarray, k: int = 10, ratio: int = 4, rescore: bool = True, originals: np.ndarray | None = None
    ) -> SearchResult:
        """Return the ``k`` best documents per row of ``xq``; scores are ``dim - 2 * Hamming`` unless re-scored."""
        check_positive_int("k", k)
        if len(self) == 0:
            raise SearchIndexError("binary index is empty: add vectors before searching")
        xq = as_matrix(xq, self.dim, name="queries")
        fetch = min(int(k) * (ratio if rescore else 1), len(self))
        H, I = self.index.search(quantize_binary(xq), fetch)
        if not rescore:
            return _result((self.dim - 2 * H).astype(np.float32), I, self.ids)
        if originals is not None:
            D, I = _exact_top_k(xq, I, originals, int(k))
            return _result(D, I, self.ids)
        codes = faiss.rev_swig_ptr(self.index.xb.data(), len(self) * self.dim // 8)
        codes = np.asarray(codes).reshape(len(self), self.dim // 8)
        signs = unpack_signs(codes[np.maximum(I, 0).ravel()]).reshape(*I.shape, self.dim)
        D = np.einsum("qcd,qd->qc", signs, xq)
        D[I < 0] = -np.inf
        top = np.argsort(-D, axis=1, kind="stable")[:, : int(k)]
        return _result(np.take_along_axis(D, top, 1), np.take_along_axis(I, top, 1), self.ids)


class Int8Index(_CodeIndex):
    """int8 embeddings (1 byte per dimension, calibrated ranges), scored by int8 dot products, then re-scored.

    Codes live in a faiss IndexScalarQuantizer of type ``SQ8_direct_signed``; ``search`` fetches ``k * ratio``
    candidates with the int8 query and re-scores them with the float query against the dequantized codes.
    """

    def __init__(self, dim: int, ranges: np.ndarray | None):
        if ranges is None:
            quantize_int8(np.zeros((1, dim), dtype=np.float32), None)  # raises the calibration error
        self.dim, self.ranges = dim, np.asarray(ranges, dtype=np.float32)
        self.index = faiss.index_factory(dim, "SQ8_direct_signed", faiss.METRIC_INNER_PRODUCT)
        self.ids: list[str] = []

    def _codes(self, xb: np.ndarray) -> np.ndarray:
        return quantize_int8(xb, self.ranges).astype(np.float32)

    def search(self, xq: np.ndarray, k: int = 10, ratio: int = 4, rescore: bool = True) -> SearchResult:
        """Return the ``k`` best documents per query row of ``xq`` (int8 dot products, re-scored in float)."""
        check_positive_int("k", k)
        if len(self) == 0:
            raise SearchIndexError("int8 index is empty: add vectors before searching")
        xq = as_matrix(xq, self.dim, name="queries")
        fetch = min(int(k) * (ratio if rescore else 1), len(self))
        D, I = self.index.search(quantize_int8(xq, self.ranges).astype(np.float32), fetch)
        if not rescore:
            return _result(D, I, self.ids)
        cand = self.index.reconstruct_batch(np.maximum(I, 0).ravel()).reshape(*I.shape, self.dim)
        vecs = dequantize_int8(cand, self.ranges)
        S = np.einsum("qcd,qd->qc", vecs, xq)
        S[I < 0] = -np.inf
        top = np.argsort(-S, axis=1, kind="stable")[:, : int(k)]
        return _result(np.take_along_axis(S, top, 1), np.take_along_axis(I, top, 1), self.ids)


# -- figures ---------------------------------------------------------------------------------------


def _find_pq(index: VectorIndex | faiss.Index):
    sub = index.index if isinstance(index, VectorIndex) else index
    while sub is not None:
        sub = faiss.downcast_index(sub)
        if hasattr(sub, "pq"):
            return sub.pq
        sub = getattr(sub, "index", None)
    raise InputError("index has no product quantizer: build it with a factory containing PQ<M>")


def reconstruction_error(index: VectorIndex | faiss.Index, x: np.ndarray) -> float:
    """Return the mean length of ``x - decoded(encoded(x))`` through the product quantizer of ``index``."""
    pq = _find_pq(index)
    x = as_matrix(x, pq.d)
    return float(np.linalg.norm(pq.decode(pq.compute_codes(x)) - x, axis=1).mean())


def serialized_size(index: VectorIndex | faiss.Index | faiss.IndexBinary | BinaryIndex | Int8Index) -> int:
    """Return the size in bytes of ``index`` written with faiss (what it takes on disk and, loaded, in RAM)."""
    if isinstance(index, (VectorIndex, Int8Index)):
        index = index.index
    if isinstance(index, BinaryIndex):
        index = index.index
    if isinstance(index, faiss.IndexBinary):
        return int(faiss.serialize_index_binary(index).size)
    return int(faiss.serialize_index(index).size)
