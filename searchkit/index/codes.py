"""Compressed vector indexes: PQ/IVFPQ/SQ/OPQ builds, re-ranking, int8 and binary codes, and their sizes."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import faiss
import numpy as np

from searchkit.errors import InputError, SearchIndexError
from searchkit.index.base import exact_top_k, keep_rows, no_results, result_of, rows_matching, top_of
from searchkit.index.memory import check_training_size, memory_estimate
from searchkit.index.vector import VERSIONS, SearchResult, VectorIndex
from searchkit.validation import as_matrix, check_id_list, check_ids_match, check_positive_int, first_duplicate

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


class Reranked:
    """A compressed VectorIndex whose top ``k * ratio`` candidates are re-scored exactly with the original vectors.

    ``originals`` (shape ``(n, d)``, row i = the i-th vector added) may be a ``np.memmap`` so the full-precision
    copy stays on disk and only the candidates are read: RAM holds just the compressed codes. It meets
    :class:`~searchkit.index.base.Index`: ``model_id``, ``backend``, ``dim`` and ``metric`` are the inner index's.
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
        self.dim, self.metric = index.dim, index.metric
        self._seen, self._version = index.version, next(VERSIONS)

    def __repr__(self) -> str:
        return f"Reranked({self.index.factory!r}, ratio={self.ratio})"

    def __len__(self) -> int:
        return len(self.index)

    @property
    def factory(self) -> str:
        """The compressed index's factory string and the re-ranking, e.g. ``'IVF4096,PQ48x4fs, re-ranked x10'``."""
        return f"{self.index.factory}, re-ranked x{self.ratio}"

    @property
    def model_id(self) -> str | None:
        """The inner index's model id."""
        return self.index.model_id

    @property
    def backend(self) -> str | None:
        """The inner index's encoder backend (setting it sets the inner index's)."""
        return self.index.backend

    @backend.setter
    def backend(self, value: str | None) -> None:
        self.index.backend = value

    @property
    def version(self) -> int:
        """A number of this wrapper's own, renewed whenever the inner index changes (caches compare it)."""
        if self.index.version != self._seen:
            self._seen, self._version = self.index.version, next(VERSIONS)
        return self._version

    def add(self, ids: Sequence[str], xb: np.ndarray) -> None:
        """Add ``xb`` to the inner index and to the originals (a memory-mapped copy is read into RAM)."""
        xb = as_matrix(xb, self.dim)
        self.index.add(ids, xb)
        self.originals = np.concatenate([self.originals, xb])

    def remove(self, ids: Iterable[str], rebuild: bool = False) -> int:
        """Remove ``ids`` from the inner index (``rebuild`` as :meth:`VectorIndex.remove`); their originals stay, unused."""
        return self.index.remove(ids, rebuild=rebuild)

    def search(
        self, xq: np.ndarray, k: int = 10, params: faiss.SearchParameters | None = None, *, nprobe: int | None = None,
        ef_search: int | None = None, subset: Iterable[str] | None = None, prefix: str | None = None,
    ) -> SearchResult:  # fmt: skip
        """Fetch ``k * ratio`` candidates per query row of ``xq``, re-score them exactly, return the best ``k``.

        ``params`` or ``nprobe``/``ef_search`` tune the candidate search; ``subset``/``prefix`` restrict it to
        matching documents as :meth:`VectorIndex.search` does (``k`` results whenever ``k`` documents match).
        """
        if params is not None and (nprobe is not None or ef_search is not None):
            raise InputError("pass either params or nprobe/ef_search, not both")
        if subset is None and prefix is None:
            D, I = self._search(xq, k, params or self.index.search_params(nprobe, ef_search))
            return result_of(D, I, self.index.ids)
        check_positive_int("k", k)
        xq = as_matrix(xq, self.dim, name="queries")
        if len(self.index) == 0:
            raise SearchIndexError("index is empty: add vectors before searching")
        if params is not None:  # keep the caller's settings; the selector is added below
            nprobe, ef_search = getattr(params, "nprobe", None), getattr(params, "efSearch", None)
        labels = self.index._labels_matching(subset, prefix)
        if len(labels) == 0:
            return SearchResult([[] for _ in xq], [[] for _ in xq])
        fetch = min(int(k) * self.ratio, len(labels))
        _, I = self.index._search_selected(xq, fetch, labels, nprobe, ef_search)
        D, I = exact_top_k(xq, I, self.originals, int(k))
        return result_of(D, I, self.index.ids)

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
        return exact_top_k(xq, I, self.originals, int(k))


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
    """Vectors stored as codes (``_codes`` turns float rows into what the faiss ``index`` holds) under document ids.

    It meets :class:`~searchkit.index.base.Index`: an exhaustive index, so ``nprobe``/``ef_search`` are refused,
    and ``subset``/``prefix`` filter the ranked candidates (``k`` results whenever ``k`` documents match).
    """

    dim: int
    index: faiss.Index | faiss.IndexBinary
    ids: list[str]
    factory: str
    metric = "ip"
    _name: str

    def _start(self) -> None:
        self.ids = []
        self.model_id: str | None = None
        self.backend: str | None = None
        self.version = next(VERSIONS)  # new on every add and remove: caches compare it

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def _codes(self, xb: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def add(self, ids: Sequence[str], xb: np.ndarray) -> None:
        """Encode float vectors ``xb`` ``(n, dim)`` and add them under ``ids``."""
        xb = as_matrix(xb, self.dim)
        ids = [str(i) for i in ids]
        check_ids_match(ids, xb)
        have = set(self.ids)
        dup = next((i for i in ids if i in have), None) or first_duplicate(ids)
        if dup is not None:
            raise InputError(f"document id {dup!r} is already in the index: remove it first")
        self.index.add(self._codes(xb))
        self.ids.extend(ids)
        self.version = next(VERSIONS)

    def remove(self, ids: Iterable[str]) -> int:
        """Remove the documents ``ids``; return how many were removed (the codes of the rest move up)."""
        ids = check_id_list(ids)
        rows = {d: r for r, d in enumerate(self.ids)}
        missing = next((i for i in ids if i not in rows), None)
        if missing is not None:
            raise InputError(f"document id {missing!r} is not in the index: nothing to remove (check the id)")
        drop = np.unique(np.fromiter((rows[i] for i in ids), dtype=np.int64, count=len(ids)))
        if len(drop) == 0:
            return 0
        self.index.remove_ids(faiss.IDSelectorBatch(drop))  # flat codes: the remaining rows keep their order
        gone = set(drop.tolist())
        self.ids = [d for r, d in enumerate(self.ids) if r not in gone]
        self.version = next(VERSIONS)
        return len(drop)

    def _candidates(
        self, xq: np.ndarray, k: int, fetch_per: int, nprobe: int | None, ef_search: int | None,
        subset: Iterable[str] | None, prefix: str | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:  # fmt: skip
        """Return ``(xq, D, I)``: the top ``k * fetch_per`` by codes of matching rows; None when none match."""
        check_positive_int("k", k)
        for name, value, kind in (("nprobe", nprobe, "IVF"), ("ef_search", ef_search, "HNSW")):
            if value is not None:
                raise InputError(f"{name} applies to {kind} indexes, not {self.factory!r}: leave it out")
        if len(self) == 0:
            raise SearchIndexError(f"{self._name} index is empty: add vectors before searching")
        xq = as_matrix(xq, self.dim, name="queries")
        allowed = rows_matching(self.ids, subset, prefix)
        fetch = min(int(k) * fetch_per, len(self) if allowed is None else int(allowed.sum()))
        if fetch == 0:
            return None
        if allowed is None:
            D, I = self.index.search(self._query_codes(xq), fetch)
            return xq, D, I
        D, I = self.index.search(self._query_codes(xq), len(self))  # everything, best first, then the matching
        return (xq, *keep_rows(D, I, allowed, fetch))

    def _query_codes(self, xq: np.ndarray) -> np.ndarray:
        return self._codes(xq)

    def _code_scores(self, D: np.ndarray) -> np.ndarray:
        """Return the scores of ``D``, the faiss distances between query codes and stored codes."""
        return D

    def _rescored(self, xq: np.ndarray, I: np.ndarray, k: int) -> SearchResult:
        raise NotImplementedError

    def search(
        self, xq: np.ndarray, k: int = 10, nprobe: int | None = None, ef_search: int | None = None,
        subset: Iterable[str] | None = None, prefix: str | None = None, *, ratio: int = 4, rescore: bool = True,
        originals: np.ndarray | None = None,
    ) -> SearchResult:  # fmt: skip
        """Return the ``k`` best documents per row of ``xq``: ``k * ratio`` candidates by codes, re-scored in float.

        Re-scoring is exact against ``originals`` (the float rows, in add order) when given, else against the
        decoded codes; ``rescore=False`` returns the code scores of the top ``k``.
        """
        found = self._candidates(xq, k, ratio if rescore else 1, nprobe, ef_search, subset, prefix)
        if found is None:
            return no_results(len(np.atleast_2d(xq)))
        xq, D, I = found
        if not rescore:
            return result_of(self._code_scores(D), I, self.ids)
        if originals is not None:
            D, I = exact_top_k(xq, I, originals, int(k))
            return result_of(D, I, self.ids)
        return self._rescored(xq, I, int(k))


class BinaryIndex(_CodeIndex):
    """One bit per dimension (``ubinary``), searched by Hamming distance in a faiss IndexBinaryFlat.

    ``search`` fetches ``k * ratio`` candidates by Hamming distance and re-scores them with the float query:
    exactly against ``originals`` when given, else against the +1/-1 codes (no extra memory).
    """

    factory, _name = "Binary", "binary"

    def __init__(self, dim: int):
        if not isinstance(dim, int) or dim < 8 or dim % 8:
            raise InputError(f"binary codes need a dimension divisible by 8, got {dim!r}")
        self.dim = dim
        self.index = faiss.IndexBinaryFlat(dim)
        self._start()

    def _codes(self, xb: np.ndarray) -> np.ndarray:
        return quantize_binary(xb)

    def _code_scores(self, D: np.ndarray) -> np.ndarray:
        return (self.dim - 2 * D).astype(np.float32)  # Hamming distance -> +1/-1 dot product

    def _rescored(self, xq: np.ndarray, I: np.ndarray, k: int) -> SearchResult:
        codes = faiss.rev_swig_ptr(self.index.xb.data(), len(self) * self.dim // 8)
        codes = np.asarray(codes).reshape(len(self), self.dim // 8)
        signs = unpack_signs(codes[np.maximum(I, 0).ravel()]).reshape(*I.shape, self.dim)
        return top_of(np.einsum("qcd,qd->qc", signs, xq), I, k, self.ids)


class Int8Index(_CodeIndex):
    """int8 embeddings (1 byte per dimension, calibrated ranges), scored by int8 dot products, then re-scored.

    Codes live in a faiss IndexScalarQuantizer of type ``SQ8_direct_signed``; ``search`` fetches ``k * ratio``
    candidates with the int8 query and re-scores them with the float query against the dequantized codes.
    """

    factory, _name = "Int8", "int8"

    def __init__(self, dim: int, ranges: np.ndarray | None):
        if ranges is None:
            quantize_int8(np.zeros((1, dim), dtype=np.float32), None)  # raises the calibration error
        self.dim, self.ranges = dim, np.asarray(ranges, dtype=np.float32)
        self.index = faiss.index_factory(dim, "SQ8_direct_signed", faiss.METRIC_INNER_PRODUCT)
        self._start()

    def _codes(self, xb: np.ndarray) -> np.ndarray:
        return quantize_int8(xb, self.ranges).astype(np.float32)

    def _rescored(self, xq: np.ndarray, I: np.ndarray, k: int) -> SearchResult:
        cand = self.index.reconstruct_batch(np.maximum(I, 0).ravel()).reshape(*I.shape, self.dim)
        vecs = dequantize_int8(cand, self.ranges)
        return top_of(np.einsum("qcd,qd->qc", vecs, xq), I, k, self.ids)


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
    if isinstance(index, (VectorIndex, Int8Index, BinaryIndex)):
        index = index.index
    if isinstance(index, faiss.IndexBinary):
        return int(faiss.serialize_index_binary(index).size)
    return int(faiss.serialize_index(index).size)
