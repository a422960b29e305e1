"""A faiss index that speaks document ids: add, search, save and load with checks at every step."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import faiss
import numpy as np

from searchkit.errors import InputError, SearchIndexError
from searchkit.index.base import SearchResult
from searchkit.index.faiss_ops import can_remove, empty_copy, index_kind, remove_in_place, search_parameters
from searchkit.index.files import load_index, save_index
from searchkit.index.sizing import (
    MIN_POINTS_PER_CELL,
    IndexSpec,
    disable_polysemous,
    hnsw_of,
    ivf_factory,
    quiet_clustering,
)
from searchkit.validation import (
    as_matrix,
    check_id_list,
    check_ids_match,
    check_positive_int,
    first_duplicate,
)

Metric = Literal["ip", "l2"]  # inner product (cosine on unit vectors) or Euclidean distance
_METRICS = {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}
VERSIONS = itertools.count(1)  # every state of every index in this process gets a number no other state has


class VectorIndex:
    """A faiss index (built from a factory string) whose results are document ids, not row numbers.

    Search parameters (``nprobe`` for IVF, ``ef_search`` for HNSW) are passed per call as faiss
    ``SearchParameters``; the defaults given here are stored on the wrapper, never written into the
    shared faiss object, so concurrent searches with different settings do not race.
    """

    def __init__(
        self,
        dim: int,
        factory: str = "Flat",
        metric: Metric = "ip",
        model_id: str | None = None,
        ef_construction: int | None = None,
        ef_search: int | None = None,
        nprobe: int | None = None,
    ):
        if metric not in _METRICS:
            raise InputError(f"unknown metric {metric!r}: use 'ip' (cosine on unit vectors) or 'l2'")
        check_positive_int("dimension", dim)
        for name, value in (("ef_construction", ef_construction), ("ef_search", ef_search), ("nprobe", nprobe)):
            check_positive_int(name, value, none_ok=True)
        try:
            base = faiss.index_factory(dim, factory, _METRICS[metric])
        except RuntimeError as e:
            first = str(e).strip().splitlines()[-1].split(": ")[-1] if str(e).strip() else "faiss error"
            raise InputError(
                f"unknown or invalid faiss factory string {factory!r} ({first}): "
                "try 'Flat', 'HNSW32', 'IVF256,Flat', 'IVF256_HNSW32,Flat', 'IVF256,PQ32' or 'SQ8'"
            ) from None
        hnsw = hnsw_of(base)
        if ef_construction is not None:
            if hnsw is None:
                raise InputError(f"ef_construction applies to HNSW indexes, not {factory!r}: leave it out")
            hnsw.hnsw.efConstruction = int(ef_construction)  # a build setting: set once, before sharing
        self.dim = dim
        self.factory = factory
        self.metric = metric
        self.model_id = model_id
        self.backend: str | None = None  # the encoder backend (and below, its ONNX scheme) that made the vectors
        self.scheme: str | None = None
        self.ef_search, self.nprobe = ef_search, nprobe
        self.read_only = False
        disable_polysemous(base)
        self.sources = None  # incremental-build state, set by load()
        self.version = next(VERSIONS)  # new on every change to the vectors (add, remove, update, train): caches compare it
        self.index = faiss.IndexIDMap2(base)
        self.ids: list[str | None] = []  # faiss label -> document id (None once deleted)
        self._label: dict[str, int] = {}

    @classmethod
    def build(
        cls,
        ids: Sequence[str],
        xb: np.ndarray,
        factory: str | IndexSpec = "Flat",
        metric: Metric = "ip",
        model_id: str | None = None,
        progress: bool | None = None,
        chunk: int = 50_000,
        train: np.ndarray | None = None,
        max_train: int | None = None,
        seed: int = 0,
        quiet: bool = False,
    ) -> VectorIndex:
        """Return an index of vectors ``xb`` (shape ``(n, d)``) under ``ids``: trained if needed, added in chunks.

        Training uses ``train`` if given, else ``xb`` or, above ``max_train`` rows, a seeded sample of that
        many rows. ``quiet`` silences faiss's line per k-means run about few training points.
        """
        xb = as_matrix(xb)
        ids = list(ids)
        check_ids_match(ids, xb)
        spec = factory if isinstance(factory, IndexSpec) else IndexSpec(factory)
        self = cls(xb.shape[1], spec.factory, metric, model_id, spec.ef_construction, spec.ef_search, spec.nprobe)
        if not self.is_trained:
            if train is None:
                big = max_train is not None and len(xb) > max_train  # train on a seeded sample of max_train rows
                train = xb[np.sort(np.random.default_rng(seed).choice(len(xb), max_train, replace=False))] if big else xb
            if quiet:
                quiet_clustering(self.index)
            self.train(train)
        from tqdm.auto import tqdm

        disable = (len(xb) <= chunk) if progress is None else not progress
        with tqdm(total=len(xb), desc=f"add {spec.factory}", unit="vec", disable=disable) as bar:
            for start in range(0, len(xb), chunk):
                self.add(ids[start : start + chunk], xb[start : start + chunk])
                bar.update(min(chunk, len(xb) - start))
        return self

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._label

    def __repr__(self) -> str:
        return f"VectorIndex({self.factory!r}, dim={self.dim}, n={len(self)}, model={self.model_id!r})"

    @property
    def is_trained(self) -> bool:
        """True when the index can take vectors (always for Flat and HNSW; IVF and PQ need ``train``)."""
        return bool(self.index.is_trained)

    @property
    def kind(self) -> str:
        """Return 'ivf', 'hnsw' or 'flat' (any other exhaustive index) for the search parameters it takes."""
        return index_kind(self.index)

    @property
    def nlist(self) -> int | None:
        """Return the number of IVF cells, or None for a non-IVF index."""
        ivf = faiss.try_extract_index_ivf(self.index)
        return None if ivf is None else int(ivf.nlist)

    def doc_ids(self) -> list[str]:
        """Return the ids of the documents in the index, in insertion order."""
        return [d for d in self.ids if d is not None]

    def train(self, xb: np.ndarray) -> None:
        """Train the quantizers of IVF/PQ/SQ indexes on sample vectors ``xb`` of shape ``(n, dim)``."""
        self._check_writable("train")
        xb = as_matrix(xb, self.dim)
        nlist = self.nlist
        if nlist is not None and len(xb) < nlist:
            hint = f"e.g. {ivf_factory(len(xb))!r}" if len(xb) >= MIN_POINTS_PER_CELL else "or use 'Flat'"
            raise InputError(
                f"IVF index {self.factory!r} has {nlist} cells but got only {len(xb)} training vectors: "
                f"give at least {nlist} (ideally {MIN_POINTS_PER_CELL * nlist}) or use fewer cells, {hint}"
            )
        try:
            self.index.train(xb)
        except RuntimeError as e:
            last = str(e).strip().splitlines()[-1] if str(e).strip() else "faiss error"
            raise InputError(
                f"training {self.factory!r} on {len(xb)} vectors failed ({last}): give more training vectors"
            ) from None
        self.version = next(VERSIONS)

    def add(self, ids: Sequence[str], xb: np.ndarray) -> None:
        """Add vectors ``xb`` (shape ``(n, dim)``) under document ids ``ids``."""
        self._check_writable("add")
        xb = as_matrix(xb, self.dim)
        ids = [str(i) for i in ids]
        check_ids_match(ids, xb)
        dup = next((i for i in ids if i in self._label), None) or first_duplicate(ids)
        if dup is not None:
            raise InputError(f"document id {dup!r} is already in the index: remove it first or use update()")
        if not self.is_trained:
            raise SearchIndexError(f"index {self.factory!r} is not trained: call train(vectors) before add()")
        start = len(self.ids)
        labels = np.arange(start, start + len(ids), dtype=np.int64)
        self.index.add_with_ids(xb, labels)
        self.ids.extend(ids)
        self._label.update(zip(ids, range(start, start + len(ids))))
        self.version = next(VERSIONS)

    def remove(self, ids: Iterable[str], rebuild: bool = False) -> int:
        """Delete documents ``ids``; return how many were removed.

        Flat and IVF indexes delete in place. HNSW graphs cannot delete (faiss has no ``remove_ids``
        for them): pass ``rebuild=True`` to rebuild the graph from the remaining stored vectors.
        """
        self._check_writable("remove documents from")
        ids = check_id_list(ids)
        missing = next((i for i in ids if i not in self._label), None)
        if missing is not None:
            raise InputError(f"document id {missing!r} is not in the index: nothing to remove (check the id)")
        labels = np.fromiter((self._label[i] for i in ids), dtype=np.int64, count=len(ids))
        if len(labels) == 0:
            return 0
        if self.kind == "hnsw" or not can_remove(self.index):
            if not rebuild:
                raise SearchIndexError(
                    f"{self.factory!r} indexes cannot delete vectors in place (faiss has no remove_ids for "
                    "HNSW graphs): call remove(ids, rebuild=True) to rebuild the index without them "
                    "(as slow as building it), or use a Flat or IVF index for a corpus that changes often"
                )
            self._rebuild(drop=labels)
        else:
            remove_in_place(self.index, labels)
        for i in ids:
            self.ids[self._label.pop(i)] = None
        self.version = next(VERSIONS)
        return len(labels)

    def update(self, ids: Sequence[str], xb: np.ndarray, rebuild: bool = False) -> None:
        """Replace the vectors of existing documents ``ids`` with ``xb`` (``rebuild=True`` for HNSW)."""
        xb = as_matrix(xb, self.dim)
        ids = check_id_list(ids)
        check_ids_match(ids, xb)
        dup = first_duplicate(ids)
        if dup is not None:
            raise InputError(f"document id {dup!r} appears twice in the update: give each id once")
        self.remove(ids, rebuild=rebuild)
        self.add(ids, xb)

    def _rebuild(self, drop: np.ndarray) -> None:
        """Rebuild the faiss index from its stored vectors, leaving out labels ``drop`` (labels are kept)."""
        dropped = set(drop.tolist())
        keep = np.array([lab for lab, d in enumerate(self.ids) if d is not None and lab not in dropped], np.int64)
        try:
            xb = self.index.reconstruct_batch(keep) if len(keep) else np.zeros((0, self.dim), np.float32)
        except RuntimeError:
            raise SearchIndexError(
                f"{self.factory!r} cannot return its stored vectors, so it cannot be rebuilt here: "
                "rebuild it from the original embeddings with VectorIndex.build(ids, vectors, factory)"
            ) from None
        index = faiss.IndexIDMap2(empty_copy(self.index.index, self.factory, _METRICS[self.metric]))
        if len(keep):
            index.add_with_ids(np.ascontiguousarray(xb, dtype=np.float32), keep)
        self.index = index

    # -- search --------------------------------------------------------------------------------

    def search_params(
        self, nprobe: int | None = None, ef_search: int | None = None, selector: faiss.IDSelector | None = None
    ) -> faiss.SearchParameters | None:
        """Return fresh faiss search parameters for one call (``nprobe`` for IVF, ``ef_search`` for HNSW)."""
        check_positive_int("nprobe", nprobe, none_ok=True)
        check_positive_int("ef_search", ef_search, none_ok=True)
        return search_parameters(self.index, self.factory, nprobe or self.nprobe, ef_search or self.ef_search,
                                 selector, given=(nprobe is not None, ef_search is not None))  # fmt: skip

    def search_raw(
        self, xq: np.ndarray, k: int = 10, nprobe: int | None = None, ef_search: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return faiss ``(D, I)`` (scores and int64 labels, -1 where missing) for queries ``xq``: for benchmarks."""
        k = check_positive_int("k", k)
        xq = as_matrix(xq, self.dim, name="queries")
        self._check_searchable()
        return self.index.search(xq, k, params=self.search_params(nprobe, ef_search))

    def search(
        self,
        xq: np.ndarray,
        k: int = 10,
        params: faiss.SearchParameters | None = None,
        *,
        nprobe: int | None = None,
        ef_search: int | None = None,
        subset: Iterable[str] | None = None,
        prefix: str | None = None,
    ) -> SearchResult:
        """Return the ``k`` nearest documents of each query row of ``xq`` (fewer if the index is smaller).

        ``nprobe`` (IVF) and ``ef_search`` (HNSW) apply to this call only. ``subset`` (document ids) and
        ``prefix`` (e.g. ``'os.'``) restrict the search to matching documents with a faiss ID selector;
        then ``k`` results come back whenever ``k`` documents match (IVF/HNSW widen the search as needed).
        """
        k = check_positive_int("k", k)
        xq = as_matrix(xq, self.dim, name="queries")
        self._check_searchable()
        filtered = subset is not None or prefix is not None
        if params is not None and (nprobe is not None or ef_search is not None):
            raise InputError("pass either params or nprobe/ef_search, not both")
        if params is not None and filtered:  # keep the caller's settings, add the selector
            nprobe = getattr(params, "nprobe", None) if self.kind == "ivf" else None
            ef_search = getattr(params, "efSearch", None) if self.kind == "hnsw" else None
        if not filtered:
            k = min(k, len(self))
            if params is None:
                params = self.search_params(nprobe, ef_search)
            D, I = self.index.search(xq, k, params=params)
            return self._result(D, I)
        labels = self._labels_matching(subset, prefix)
        if len(labels) == 0:
            return SearchResult([[] for _ in range(len(xq))], [[] for _ in range(len(xq))])
        k = min(k, len(labels))
        D, I = self._search_selected(xq, k, labels, nprobe, ef_search)
        return self._result(D, I)

    def _search_selected(
        self, xq: np.ndarray, k: int, labels: np.ndarray, nprobe: int | None, ef_search: int | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Search only ``labels``; widen nprobe/efSearch for the rows that found fewer than ``k``."""
        selector = faiss.IDSelectorBatch(labels)
        kind = self.kind
        if kind == "ivf":
            ivf = faiss.try_extract_index_ivf(self.index)
            nprobe = min(int(nprobe or self.nprobe or ivf.nprobe), int(ivf.nlist))
        elif kind == "hnsw":
            ef_search = int(ef_search or self.ef_search or hnsw_of(self.index.index).hnsw.efSearch)
        D, I = self.index.search(xq, k, params=self.search_params(nprobe, ef_search, selector))
        while True:
            short = I[:, k - 1] < 0
            if not short.any():
                break
            if kind == "ivf" and nprobe < self.nlist:
                nprobe = min(nprobe * 4, self.nlist)
            elif kind == "hnsw" and ef_search < len(self):
                ef_search = min(ef_search * 4, len(self))
            else:
                break
            D2, I2 = self.index.search(xq[short], k, params=self.search_params(nprobe, ef_search, selector))
            D[short], I[short] = D2, I2
        return D, I

    def _labels_matching(self, subset: Iterable[str] | None, prefix: str | None) -> np.ndarray:
        """Return the sorted faiss labels of documents in ``subset`` and starting with ``prefix``."""
        if prefix is not None and (not isinstance(prefix, str) or not prefix):
            raise InputError(f"prefix must be a non-empty string such as 'os.', got {prefix!r}")
        if subset is not None:
            wanted = check_id_list(subset)
            labels = [self._label[i] for i in wanted if i in self._label]
            if prefix is not None:
                labels = [lab for lab in labels if self.ids[lab].startswith(prefix)]  # type: ignore[union-attr]
        else:
            labels = [lab for d, lab in self._label.items() if d.startswith(prefix)]  # type: ignore[arg-type]
        return np.unique(np.asarray(labels, dtype=np.int64))

    def _result(self, D: np.ndarray, I: np.ndarray) -> SearchResult:
        ids, scores = [], []
        for drow, irow in zip(D, I):
            keep = irow >= 0
            ids.append([self.ids[j] for j in irow[keep]])  # type: ignore[misc]
            scores.append([float(d) for d in drow[keep]])
        return SearchResult(ids, scores)

    def _check_searchable(self) -> None:
        if not self.is_trained:
            raise SearchIndexError(f"index {self.factory!r} is not trained: train and add vectors before searching")
        if len(self) == 0:
            raise SearchIndexError("index is empty: add vectors before searching")

    def _check_writable(self, action: str) -> None:
        if self.read_only:
            raise SearchIndexError(
                f"cannot {action} this index: it was loaded read-only with mmap=True; "
                "load it with VectorIndex.load(folder) (mmap=False) to change it"
            )

    # -- persistence (searchkit.index.files) ----------------------------------------------------

    def save(self, folder: str | Path, sources: dict | None = None) -> Path:
        """Write the index to ``folder`` atomically; return the manifest path (``sources``: incremental-build state)."""
        return save_index(self, folder, sources)

    @classmethod
    def from_faiss(
        cls, index: faiss.IndexIDMap2, ids: list[str | None], factory: str, metric: Metric = "ip",
        model_id: str | None = None, ef_search: int | None = None, nprobe: int | None = None,
    ) -> VectorIndex:  # fmt: skip
        """Wrap an id-mapped faiss ``index`` whose label ``i`` is document ``ids[i]`` (None: deleted)."""
        if not isinstance(index, faiss.IndexIDMap2) or index.ntotal != sum(d is not None for d in ids):
            raise SearchIndexError(f"expected a faiss IndexIDMap2 with one label per live id, got {type(index).__name__}")
        self = cls(index.d, factory, metric, model_id, ef_search=ef_search, nprobe=nprobe)
        self.index, self.ids = index, list(ids)
        self._label = {d: i for i, d in enumerate(self.ids) if d is not None}
        return self

    @classmethod
    def load(cls, folder: str | Path, model_id: str | None = None, dim: int | None = None, mmap: bool = False,
             model_sha256: str | None = None) -> VectorIndex:  # fmt: skip
        """Load an index saved by :meth:`save`, verifying checksums and (if given) the model and dimension."""
        saved = load_index(folder, model_id, dim, mmap, model_sha256)
        m = saved.manifest
        self = cls.from_faiss(saved.index, saved.ids, m.factory, m.metric, m.model, m.ef_search, m.nprobe)
        self.backend, self.scheme, self.sources, self.read_only = m.backend, m.scheme, saved.sources, saved.read_only
        self.model_sha256 = m.model_sha256  # the model folder's content hash (None: not recorded)
        return self
